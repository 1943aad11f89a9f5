"""TensorRT-LLM in-process through its LLM API (PyTorch backend, the default of
``tensorrt_llm.LLM`` since 1.0), for Qwen2.5-VL / Qwen3-VL checkpoints on an NVIDIA GPU.

CHECKED AGAINST THE SOURCE, NOT RUN: TensorRT-LLM needs an NVIDIA GPU and CUDA, which no machine
of this project has. This module follows TensorRT-LLM's own source (``llmapi/llm.py``,
``sampling_params.py``, ``executor/result.py``, ``executor/proxy.py``, ``executor/ipc.py``,
``_torch/models/modeling_qwen2vl.py``) and is unit-tested against a stand-in built like it.
What that reading dictates:

- Greedy is ``top_k=1`` with ``top_p`` and ``temperature`` unset: on 1.0 the torch sampler takes
  top-p whenever it is set, so ``temperature=0`` alone does not make it greedy before 1.1.
- ``generate_async`` and ``abort()`` send on one ZeroMQ socket with no lock, so every call into
  the ``LLM`` (submit, abort, shutdown) holds this engine's lock.
- ``generate_async`` raises (``ValueError`` when prompt + image tokens exceed ``max_num_tokens``,
  ``RuntimeError("LLM is shutting down")``); every such error becomes a status.
- TensorRT-LLM tokenizes with a processor it builds itself: ``max_pixels`` reaches it only as
  the prompt's ``mm_processor_kwargs``, sent only where it lowers the checkpoint's own limit.
- Each step of the result iterator blocks on a queue with no timeout, so a per-request timer
  aborts the request at its deadline, and the caller waits on the deadline, not on the iterator.

Every request runs as its own ``generate_async(..., streaming=True)`` stream on its own thread;
TensorRT-LLM batches in-flight requests itself. A stream is aborted as soon as its answer is
complete, on cancel, or at the deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from pathlib import Path
from typing import Any

from egm_ros.core.engine import Engine, EngineOutput, EngineRequest, SamplingParams
from egm_ros.core.types import GroundingError, Status
from egm_ros.engines.pixel_limits import (
    effective_max_pixels,
    mm_processor_kwargs,
    own_max_pixels,
)

log = logging.getLogger(__name__)

#: How often the caller looks at its cancel events while it waits.
_POLL_S = 0.02
#: How long ``close`` waits for a call in progress before it shuts TensorRT-LLM down anyway.
_CLOSE_LOCK_S = 30.0
#: ``model_type`` values with no PyTorch-backend model in TensorRT-LLM 1.0-1.2.
_NO_PYTORCH_MODEL = {"internvl": "InternVL", "internvl_chat": "InternVL"}
#: ``model_type`` -> the first TensorRT-LLM release with its PyTorch-backend model.
_FIRST_RELEASE = {"qwen3_vl": (1, 2), "qwen3_vl_moe": (1, 2)}


class _Stream:
    """One request's stream. ``result`` and ``stopped`` change only under the engine lock, so
    a stream is submitted at most once, never after it was stopped, and aborted at most once."""

    def __init__(self, request: EngineRequest) -> None:
        self.request = request
        self.future: Future[EngineOutput] = Future()
        self.result: Any = None  # TensorRT-LLM's RequestOutput once submitted
        self.stopped: Status | None = None
        self.finished = False


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
        self._config = _read_config(model)
        check_model_type(self._config, str(getattr(tensorrt_llm, "__version__", "")))
        #: Every call into ``self.llm`` holds it: its request socket is not thread-safe.
        self._lock = threading.Lock()
        self._closed = False
        try:
            # For the chat template and the checkpoint's own pixel limit: TensorRT-LLM
            # preprocesses images with a processor it builds from the same folder.
            self.processor = AutoProcessor.from_pretrained(
                model, trust_remote_code=trust_remote_code
            )
            own = own_max_pixels(getattr(self.processor, "image_processor", None))
            # max_pixels lowers the checkpoint's own limit, never raises it.
            self._max_pixels = effective_max_pixels(own, max_pixels) if own else None
            self._mm_processor_kwargs = mm_processor_kwargs(own, max_pixels)
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
        except Exception as err:  # noqa: BLE001 - no GPU, bad model, ...
            raise GroundingError(
                Status.ENGINE_UNAVAILABLE, f"TensorRT-LLM could not load {model!r}: {err}"
            ) from err

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def model_config(self) -> dict | None:
        return self._config

    @property
    def processor_max_pixels(self) -> int | None:
        return self._max_pixels

    def health(self) -> bool:
        return not self._closed

    def sampling_params(self, sampling: SamplingParams):
        """Ours as TensorRT-LLM's ``SamplingParams``. Greedy (temperature 0) is ``top_k=1``
        alone, greedy in every release; penalties only when they change something."""
        kwargs: dict = {"max_tokens": sampling.max_new_tokens}
        if sampling.temperature <= 0:
            kwargs["top_k"] = 1
        else:
            kwargs["temperature"] = sampling.temperature
            kwargs["top_p"] = sampling.top_p
            if sampling.top_k > 0:
                kwargs["top_k"] = sampling.top_k
        if sampling.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = sampling.repetition_penalty
        return self._trt.SamplingParams(**kwargs)

    def build_prompt(self, request: EngineRequest) -> dict:
        """Image first, then text, no system prompt; the model's own chat template; the
        pixel budget for TensorRT-LLM's processor, if one was set."""
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
        image = Image.fromarray(request.pixels())
        prompt = {"prompt": text, "multi_modal_data": {"image": [image]}}
        if self._mm_processor_kwargs:
            prompt["mm_processor_kwargs"] = dict(self._mm_processor_kwargs)
        return prompt

    # ------------------------------------------------------------------ generation
    def generate(self, requests: Sequence[EngineRequest], timeout: float) -> list[EngineOutput]:
        if self._closed:
            raise GroundingError(Status.ENGINE_UNAVAILABLE, "engine is closed")
        deadline = time.monotonic() + timeout
        streams = [_Stream(r) for r in requests]
        for stream in streams:
            threading.Thread(
                target=self._run, args=(stream, deadline), name="egm-trtllm", daemon=True
            ).start()
        stop = Status.TIMEOUT
        try:
            return self._wait(streams, deadline, timeout)
        except GroundingError as err:
            stop = err.status
            raise
        finally:
            # A failed or timed-out sibling stops the others. On a thread of its own: the lock
            # may be held by a submit that TensorRT-LLM never acknowledges, and the caller
            # returns at its deadline whatever happens there.
            live = [s for s in streams if not s.finished]
            if live:
                threading.Thread(
                    target=self._stop_all, args=(live, stop), name="egm-trtllm-stop", daemon=True
                ).start()

    def _stop_all(self, streams: list[_Stream], status: Status) -> None:
        for stream in streams:
            self._stop(stream, status)

    def _wait(self, streams: list[_Stream], deadline: float, timeout: float) -> list[EngineOutput]:
        """Wait for every stream until the deadline, not for the iterators: a step of one can
        block for as long as TensorRT-LLM sends nothing."""
        cancels = [s.request.cancel for s in streams if s.request.cancel is not None]
        pending = {s.future for s in streams}
        while pending:
            if any(cancel.is_set() for cancel in cancels):
                raise GroundingError(Status.CANCELLED, "cancelled")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GroundingError(Status.TIMEOUT, f"no answer within {timeout:g} s")
            done, pending = wait(pending, min(_POLL_S, remaining), FIRST_EXCEPTION)
            for future in done:
                if (error := future.exception()) is not None:
                    raise error.detached() if isinstance(error, GroundingError) else error
        return [s.future.result() for s in streams]

    def _run(self, stream: _Stream, deadline: float) -> None:
        """Thread body: submit, arm the deadline timer, read; the outcome goes to the future
        once the stream is marked finished (so nothing aborts a request that is over)."""
        timer = threading.Timer(
            max(0.0, deadline - time.monotonic()), self._stop, (stream, Status.TIMEOUT)
        )
        timer.daemon = True
        try:
            self._submit(stream)
            timer.start()
            outcome: EngineOutput | GroundingError = self._read(stream, deadline)
        except GroundingError as err:
            outcome = err.detached()  # see GroundingError.detached
        except Exception as err:  # noqa: BLE001 - engine faults become statuses
            outcome = GroundingError(Status.ENGINE_ERROR, f"TensorRT-LLM failed: {err}")
        finally:
            timer.cancel()
            with self._lock:
                stream.finished = True
        if isinstance(outcome, GroundingError):
            stream.future.set_exception(outcome)
        else:
            stream.future.set_result(outcome)

    def _submit(self, stream: _Stream) -> None:
        request = stream.request
        prompt = self.build_prompt(request)
        params = self.sampling_params(request.sampling)
        with self._lock:
            if stream.stopped is not None:
                raise GroundingError(stream.stopped, "stopped before it was submitted")
            try:
                stream.result = self.llm.generate_async(prompt, params, streaming=True)
            except Exception as err:  # noqa: BLE001 - ValueError, RuntimeError, IPC errors
                raise _submit_error(err) from err

    def _read(self, stream: _Stream, deadline: float) -> EngineOutput:
        request, start = stream.request, time.monotonic()
        text, tokens, finish = "", 0, ""
        for partial in stream.result:
            if stream.stopped is not None:  # the timer or the caller aborted it
                break
            completion = partial.outputs[0]
            text, tokens = completion.text, len(completion.token_ids)
            finish = str(completion.finish_reason or finish)
            if request.on_progress is not None:
                request.on_progress(tokens, text)
            if request.cancel is not None and request.cancel.is_set():
                self._stop(stream, Status.CANCELLED)
                break
            if time.monotonic() > deadline:
                self._stop(stream, Status.TIMEOUT)
                break
            if request.stop_check is not None and request.stop_check(text):
                self._stop(stream, None)
                finish = "answer_complete"
                break
        if stream.stopped is not None:
            raise GroundingError(stream.stopped, f"stopped ({stream.stopped}) before the answer")
        return EngineOutput(
            text=text,
            tokens=tokens,
            inference_ms=(time.monotonic() - start) * 1000.0,
            finish_reason=finish,
        )

    def _stop(self, stream: _Stream, status: Status | None) -> None:
        """Abort a stream that is still running (once), under the lock; ``status`` is why,
        ``None`` for a complete answer. A stream not yet submitted never will be."""
        with self._lock:
            if stream.finished or (stream.stopped is not None):
                return
            stream.stopped = status
            stream.finished = status is None  # a complete answer: nothing left to stop
            if stream.result is None:  # not submitted yet: _submit sees ``stopped`` and refuses
                return
            try:
                stream.result.abort()
            except Exception as err:  # noqa: BLE001 - the answer or status stands regardless
                log.warning("TensorRT-LLM abort failed: %s", err)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Shutdown aborts every request on the same socket, so it takes the lock, but not for
        # ever: a submit TensorRT-LLM never acknowledges would hold it for good.
        locked = self._lock.acquire(timeout=_CLOSE_LOCK_S)
        if not locked:
            log.warning("TensorRT-LLM is stuck in a call; shutting it down regardless")
        try:
            shutdown = getattr(self.llm, "shutdown", None)
            if callable(shutdown):
                shutdown()
        except Exception as err:  # noqa: BLE001 - closing must not raise
            log.warning("TensorRT-LLM shutdown failed: %s", err)
        finally:
            if locked:
                self._lock.release()


def _submit_error(err: Exception) -> GroundingError:
    """A ``generate_async`` failure as a status: shutting down means no engine to serve."""
    message = f"TensorRT-LLM refused the request: {type(err).__name__}: {err}"
    if "shutting down" in str(err).lower():
        return GroundingError(Status.ENGINE_UNAVAILABLE, message)
    return GroundingError(Status.ENGINE_ERROR, message)


def _read_config(model: str) -> dict | None:
    """The checkpoint's ``config.json`` (local folder or Hugging Face cache), else ``None``."""
    try:
        from transformers import PretrainedConfig

        return PretrainedConfig.get_config_dict(str(Path(model)))[0]
    except Exception:  # noqa: BLE001 - unknown here; TensorRT-LLM reports its own error
        return None


def check_model_type(config: dict | None, version: str) -> None:
    """Refuse, before loading anything, a ``model_type`` the PyTorch backend cannot run:
    InternVL (no model in 1.0-1.2), Qwen3-VL on a release before its model (1.2)."""
    model_type = str((config or {}).get("model_type", "")).lower()
    if model_type in _NO_PYTORCH_MODEL:
        raise GroundingError(
            Status.ENGINE_UNAVAILABLE,
            f"TensorRT-LLM's PyTorch backend has no {_NO_PYTORCH_MODEL[model_type]} model "
            f"(model_type {model_type!r}); serve it with vLLM (backend vllm, or openai against "
            "vllm serve)",
        )
    first = _FIRST_RELEASE.get(model_type)
    release = _release(version)
    if first and release and release < first:
        raise GroundingError(
            Status.ENGINE_UNAVAILABLE,
            f"model_type {model_type!r} needs TensorRT-LLM {first[0]}.{first[1]} or later "
            f"(the PyTorch backend's model landed then); this is {version}",
        )


def _release(version: str) -> tuple[int, int] | None:
    """``"1.2.0rc1"`` -> ``(1, 2)``; ``None`` when unknown."""
    parts = version.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or "x")
    except (IndexError, ValueError):
        return None
