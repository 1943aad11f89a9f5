"""Hugging Face transformers in-process: ``AutoModelForImageTextToText`` + ``AutoProcessor``
from a local folder (offline) or a hub name, on CPU or CUDA (bf16 on GPU), greedy by default.

Concurrent ``generate`` calls (the node's workers, the visible + amodal pair) are collected by
one worker thread into a batch (``max_batch_size``, ``batch_window_ms``) and run as one
``model.generate`` with left padding. After a batch of N, the next one waits up to
``batch_linger_ms`` for N requests: callers with several in flight get their answers together
and come back within milliseconds of each other, but not always within the short window. A
stopping criterion ends each sequence as soon as its answer is complete (the request's
``stop_check``), reports progress and honours cancel and the deadline.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from egm_ros.core.engine import Engine, EngineOutput, EngineRequest
from egm_ros.core.types import GroundingError, Status
from egm_ros.engines.batching import BatchWorker, Job
from egm_ros.engines.pixel_limits import lower_max_pixels

try:  # the engine module is imported only when this backend is chosen
    from transformers import StoppingCriteria
except ImportError:  # pragma: no cover - reported by TransformersEngine()
    StoppingCriteria = object

log = logging.getLogger(__name__)


class TransformersEngine(Engine):
    backend = "transformers"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_pixels: int | None = None,
        max_batch_size: int = 8,
        batch_window_ms: float = 5.0,
        batch_linger_ms: float = 50.0,
        num_threads: int | None = None,
        display_name: str | None = None,
    ) -> None:
        try:
            import torch
        except ImportError as err:
            raise GroundingError(
                Status.ENGINE_UNAVAILABLE,
                f"transformers backend needs torch and transformers ({err})",
            ) from err
        self._torch = torch
        self._name = display_name or model
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        if num_threads:
            torch.set_num_threads(num_threads)
        self.processor, self.model = _load(model, device, getattr(torch, dtype))
        self.device = device
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"
        # max_pixels lowers the checkpoint's own limit, never raises it.
        self._max_pixels = lower_max_pixels(self.processor.image_processor, max_pixels)
        self._eos = {
            i
            for i in [self.model.generation_config.eos_token_id, tokenizer.eos_token_id]
            if isinstance(i, int)
        }
        self._pad = (
            tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else next(iter(self._eos), 0)
        )
        config_file = Path(model) / "config.json"
        self._config = (
            json.loads(config_file.read_text())
            if config_file.is_file()
            else self.model.config.to_dict()
        )
        self.worker = BatchWorker(
            self._run_batch,
            name="egm-transformers",
            max_batch_size=max_batch_size,
            batch_window_s=batch_window_ms / 1000.0,
            batch_linger_s=batch_linger_ms / 1000.0,
            grace_s=1.0,  # the stopper ends a late batch with a timeout status itself
        )

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def model_config(self) -> dict | None:
        return self._config

    @property
    def processor_max_pixels(self) -> int | None:
        return self._max_pixels

    @property
    def batch_sizes(self) -> list[int]:
        """Sizes of the batches run (for tests and benchmarks)."""
        return self.worker.batch_sizes

    def close(self) -> None:
        self.worker.close(timeout=30)

    def generate(self, requests: Sequence[EngineRequest], timeout: float) -> list[EngineOutput]:
        return self.worker.generate(requests, timeout)

    def _inputs(self, jobs: list[Job]):
        """The batch as the processor makes it: chat template (image first), images resized
        to the processor's limit, left padding."""
        from PIL import Image

        texts = [
            self.processor.apply_chat_template(
                [
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": j.request.prompt}],
                    }
                ],
                add_generation_prompt=True,
                tokenize=False,
                **(j.request.chat_template_kwargs or {}),
            )
            for j in jobs
        ]
        images = [Image.fromarray(j.request.pixels()) for j in jobs]
        return self.processor(text=texts, images=images, padding=True, return_tensors="pt").to(
            self.device
        )

    def _run_batch(self, jobs: list[Job]) -> list[EngineOutput]:
        torch = self._torch
        inputs = self._inputs(jobs)
        prompt_len = inputs["input_ids"].shape[1]
        sampling = jobs[0].request.sampling
        stopper = _AnswerStopper(self, jobs, prompt_len)
        start = time.monotonic()
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max(j.request.sampling.max_new_tokens for j in jobs),
                do_sample=sampling.temperature > 0,
                temperature=sampling.temperature if sampling.temperature > 0 else None,
                top_p=sampling.top_p if sampling.temperature > 0 else None,
                top_k=sampling.top_k if sampling.temperature > 0 else None,
                repetition_penalty=sampling.repetition_penalty,
                stopping_criteria=[stopper],
                pad_token_id=self._pad,
            )
        elapsed = (time.monotonic() - start) * 1000.0
        if stopper.status is not None:
            raise GroundingError(*stopper.status)
        results = []
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()  # each row, unpadded
        for row, job, read in zip(out[:, prompt_len:].tolist(), jobs, prompt_tokens, strict=True):
            tokens = _until_eos(row, self._eos, self._pad, job.request.sampling.max_new_tokens)
            text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True)
            finish = (
                "answer_complete"
                if stopper.done_at.get(id(job))
                else ("length" if len(tokens) >= job.request.sampling.max_new_tokens else "stop")
            )
            results.append(
                EngineOutput(
                    text=text,
                    tokens=len(tokens),
                    inference_ms=elapsed,
                    finish_reason=finish,
                    prompt_tokens=int(read),
                )
            )
        return results


def _load(model: str, device: str, dtype: object) -> tuple:
    """(processor, model in eval mode on ``device``), from a local folder or, unless
    ``HF_HUB_OFFLINE=1``, the hub."""
    try:
        from transformers import AutoModelForImageTextToText, AutoProcessor
    except ImportError as err:
        raise GroundingError(
            Status.ENGINE_UNAVAILABLE, f"transformers backend needs torch and transformers ({err})"
        ) from err
    offline = Path(model).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1"
    extra = {}
    if device == "cpu":  # batched decoding without copying the key/value heads (cpu_attention)
        from egm_ros.engines.cpu_attention import register

        extra["attn_implementation"] = register()
    try:
        processor = AutoProcessor.from_pretrained(model, local_files_only=offline)
        loaded = AutoModelForImageTextToText.from_pretrained(
            model, dtype=dtype, local_files_only=offline, **extra
        )
    except (OSError, ValueError) as err:
        raise GroundingError(
            Status.ENGINE_UNAVAILABLE,
            f"cannot load model {model!r}: {str(err).splitlines()[0]}",
        ) from err
    if device == "cpu":  # same numbers in fewer, larger operations (fast_forwards)
        from egm_ros.models.fast_forwards import use_fused_rms_norm, use_linear_patch_embedding

        use_linear_patch_embedding(loaded)
        use_fused_rms_norm(loaded)
    return processor, loaded.to(device).eval()


def _until_eos(row: list[int], eos: set[int], pad: int, limit: int) -> list[int]:
    out = []
    for token in row[:limit]:
        if token in eos or token == pad:
            break
        out.append(token)
    return out


class _AnswerStopper(StoppingCriteria):
    """A transformers ``StoppingCriteria``: per sequence, True once its answer is complete (or
    its own token limit is reached); all sequences stop on cancel or past the deadline."""

    def __init__(self, engine: TransformersEngine, jobs: list[Job], prompt_len: int) -> None:
        self.engine, self.jobs, self.prompt_len = engine, jobs, prompt_len
        self.done_at: dict[int, int] = {}
        self.status: tuple[Status, str] | None = None

    def __call__(self, input_ids, scores, **kwargs):
        torch = self.engine._torch
        tokenizer = self.engine.processor.tokenizer
        new = input_ids[:, self.prompt_len :]
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        now = time.monotonic()
        for i, job in enumerate(self.jobs):
            request = job.request
            if request.cancel is not None and request.cancel.is_set():
                self.status = (Status.CANCELLED, "cancelled")
            elif job.abort.is_set() or now > job.deadline:
                self.status = (Status.TIMEOUT, "no complete answer before the deadline")
            if self.status is not None:
                done[:] = True
                return done
            if id(job) in self.done_at:
                done[i] = True
                continue
            if request.stop_check is None and request.on_progress is None:
                done[i] = new.shape[1] >= request.sampling.max_new_tokens
                continue
            tokens = _until_eos(new[i].tolist(), self.engine._eos, self.engine._pad, 1 << 30)
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            if request.on_progress is not None:
                request.on_progress(len(tokens), text)
            complete = request.stop_check is not None and request.stop_check(text)
            if complete or len(tokens) >= request.sampling.max_new_tokens:
                self.done_at[id(job)] = len(tokens)
                done[i] = True
        return done
