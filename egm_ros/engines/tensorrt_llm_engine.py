"""TensorRT-LLM in-process through its LLM API (PyTorch backend, the default of
``tensorrt_llm.LLM`` since 1.0), for Qwen2.5-VL / Qwen3-VL checkpoints on an NVIDIA GPU.

UNVERIFIED HERE: TensorRT-LLM needs an NVIDIA GPU and CUDA, which no machine of this project has.
This module is written against the documented API (``LLM``, ``SamplingParams``,
``llmapi.KvCacheConfig``, ``LLM.generate_async(..., streaming=True)`` returning a result that
iterates over partial outputs and has ``abort()``; multimodal prompts as
``{"prompt": text, "multi_modal_data": {"image": [PIL.Image]}}`` with the model's chat template
applied, as TensorRT-LLM's multimodal quick-start does) and unit-tested against a stand-in of
that API only.

Every request runs as its own ``generate_async`` stream; TensorRT-LLM batches in-flight
requests itself. A stream is aborted as soon as its answer is complete, on cancel, or at the
deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from egm_ros.core.types import GroundingError, Status
from egm_ros.engines.base import Engine, EngineOutput, EngineRequest, SamplingParams


class TensorRTLLMEngine(Engine):
    backend = "tensorrt_llm"

    def __init__(
        self,
        model: str,
        *,
        max_batch_size: int = 8,
        max_num_tokens: int = 8192,
        kv_cache_free_gpu_memory_fraction: float = 0.8,
        tensor_parallel_size: int = 1,
        max_pixels: int | None = None,
        trust_remote_code: bool = False,
        **llm_kwargs,
    ) -> None:
        try:
            import tensorrt_llm
            from tensorrt_llm.llmapi import KvCacheConfig
        except ImportError as err:
            raise GroundingError(
                Status.ENGINE_UNAVAILABLE,
                "tensorrt_llm backend needs TensorRT-LLM (pip install tensorrt-llm on an NVIDIA "
                f"GPU machine) ({err})",
            ) from err
        from transformers import AutoProcessor

        self._trt = tensorrt_llm
        self._name = model
        try:
            self.processor = AutoProcessor.from_pretrained(
                model, trust_remote_code=trust_remote_code
            )
            if max_pixels and hasattr(self.processor, "image_processor"):
                self.processor.image_processor.max_pixels = max_pixels
            self.llm_kwargs = dict(
                model=model,
                max_batch_size=max_batch_size,
                max_num_tokens=max_num_tokens,
                kv_cache_config=KvCacheConfig(
                    free_gpu_memory_fraction=kv_cache_free_gpu_memory_fraction
                ),
                tensor_parallel_size=tensor_parallel_size,
                trust_remote_code=trust_remote_code,
                **llm_kwargs,
            )
            self.llm = tensorrt_llm.LLM(**self.llm_kwargs)
        except GroundingError:
            raise
        except Exception as err:  # noqa: BLE001 - no GPU, bad model, ...
            raise GroundingError(
                Status.ENGINE_UNAVAILABLE, f"TensorRT-LLM could not load {model!r}: {err}"
            ) from err
        self._pool = ThreadPoolExecutor(max_batch_size * 2, thread_name_prefix="egm-trtllm")

    @property
    def model_name(self) -> str:
        return self._name

    def sampling_params(self, sampling: SamplingParams):
        """Ours as TensorRT-LLM's ``SamplingParams``."""
        return self._trt.SamplingParams(
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            repetition_penalty=sampling.repetition_penalty,
        )

    def build_prompt(self, request: EngineRequest) -> dict:
        """Image first, then text, no system prompt; the model's own chat template."""
        from PIL import Image

        messages = [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": request.prompt}],
            }
        ]
        text = self.processor.apply_chat_template(
            messages,
            add_generation_prompt=True,
            tokenize=False,
            **(request.chat_template_kwargs or {}),
        )
        return {"prompt": text, "multi_modal_data": {"image": [Image.fromarray(request.image)]}}

    def generate(self, requests: Sequence[EngineRequest], timeout: float) -> list[EngineOutput]:
        deadline = time.monotonic() + timeout
        abort = threading.Event()
        futures = [self._pool.submit(self._one, r, deadline, abort) for r in requests]
        try:
            return [f.result(max(0.0, deadline - time.monotonic()) + 1.0) for f in futures]
        except TimeoutError:
            raise GroundingError(Status.TIMEOUT, f"no answer within {timeout:g} s") from None
        finally:
            abort.set()

    def _one(self, request: EngineRequest, deadline: float, abort: threading.Event) -> EngineOutput:
        start = time.monotonic()
        result = self.llm.generate_async(
            self.build_prompt(request), self.sampling_params(request.sampling), streaming=True
        )
        text, tokens, finish = "", 0, ""
        try:
            for partial in result:
                completion = partial.outputs[0]
                text, tokens = completion.text, len(completion.token_ids)
                finish = str(completion.finish_reason or finish)
                if request.on_progress is not None:
                    request.on_progress(tokens, text)
                if request.cancel is not None and request.cancel.is_set():
                    result.abort()
                    raise GroundingError(Status.CANCELLED, "cancelled")
                if abort.is_set() or time.monotonic() > deadline:
                    result.abort()
                    raise GroundingError(Status.TIMEOUT, "no complete answer before the deadline")
                if request.stop_check is not None and request.stop_check(text):
                    result.abort()
                    finish = "answer_complete"
                    break
        except GroundingError:
            raise
        except Exception as err:  # noqa: BLE001 - engine faults become statuses
            raise GroundingError(Status.ENGINE_ERROR, f"TensorRT-LLM failed: {err}") from err
        return EngineOutput(
            text=text,
            tokens=tokens,
            inference_ms=(time.monotonic() - start) * 1000.0,
            finish_reason=finish,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        shutdown = getattr(self.llm, "shutdown", None)
        if callable(shutdown):
            shutdown()
