"""A stand-in of TensorRT-LLM's LLM API (PyTorch backend, releases 1.0-1.2) for the engine's
unit tests: no GPU here, and PyPI's ``tensorrt-llm`` cannot be installed. It is injected as
``tensorrt_llm`` by those tests only.

Where it matters it behaves like the real objects, as read in TensorRT-LLM's source:

- ``LLM.generate_async`` raises before submitting: ``RuntimeError("LLM is shutting down")``
  once shut down, and ``ValueError`` when the prompt's tokens exceed ``max_num_tokens``
  (``llmapi/llm.py``, ``_check_arguments``; chunked prefill is off by default).
- The prompt is tokenized by a processor the LLM loads from the model folder itself
  (TensorRT-LLM builds its own input processor); the request's ``mm_processor_kwargs`` are
  passed to that processor call (``_torch/models/modeling_qwen2vl.py``, ``_preprocess``).
- Submitting, aborting and shutting down all send on one request socket that is not
  thread-safe (``executor/ipc.py``: ``ZeroMqQueue.put`` takes no lock; ``executor/proxy.py``:
  ``submit`` puts, then waits for the worker's acknowledgement). Concurrent entry is detected,
  counted in ``violations``, and every send caught in it raises.
- The result iterates by blocking on a queue with no timeout (``executor/result.py``,
  ``__next__`` -> ``queue.get()``), fed by a producer thread standing in for the executor.
  ``abort()`` makes the producer send a final ``cancelled`` response; ``prefill_s=math.inf``
  keeps a request in prefill (no token) until aborted; ``abort_ignored`` models an executor
  that never answers again (the iterator blocks until :meth:`LLM.release_all`).
"""

from __future__ import annotations

import math
import queue
import threading
import time
import types
from dataclasses import dataclass, field


@dataclass
class Behaviour:
    """How the stand-in executor answers every request of one ``LLM``."""

    pieces: list[str] = field(default_factory=list)
    #: Seconds between tokens.
    delay: float = 0.0
    #: Seconds before the first token (prefill); ``math.inf``: until aborted.
    prefill_s: float = 0.0
    #: Seconds one send holds the request socket (the window in which a second sender corrupts).
    socket_hold_s: float = 0.01
    #: The executor never answers an abort (dead or hung).
    abort_ignored: bool = False
    #: ``tensorrt_llm.__version__``.
    version: str = "1.2.0"


class _Socket:
    """The proxy's request queue: one ZeroMQ socket, no lock. Sends that overlap in time
    corrupt each other's frames: each of them raises."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.violations = 0
        self.sent: list[tuple] = []
        self._inside: set[int] = set()
        self._corrupted: set[int] = set()
        self._tickets = 0
        self._books = threading.Lock()  # the stand-in's own bookkeeping, not the socket's

    def send(self, message: tuple) -> None:
        with self._books:
            self._tickets += 1
            ticket = self._tickets
            if self._inside:
                self.violations += 1
                self._corrupted |= self._inside | {ticket}
            self._inside.add(ticket)
        try:
            time.sleep(self.hold_s)
        finally:
            with self._books:
                self._inside.discard(ticket)
                corrupted = ticket in self._corrupted
        if corrupted:
            raise RuntimeError(
                "ZMQ thread safety violation detected in [proxy request queue]: "
                "ZMQ sockets are not thread-safe!"
            )
        self.sent.append(message)


class _Completion:
    def __init__(self, text: str, tokens: int, finish_reason: str | None) -> None:
        self.text, self.token_ids, self.finish_reason = text, list(range(tokens)), finish_reason


class _Result:
    """Streaming ``GenerationResult``: partial outputs, cumulative ``.text``, ``abort()``."""

    def __init__(self, llm: LLM, request_id: int) -> None:
        self.llm, self.request_id = llm, request_id
        self.aborted, self.finished, self.consumed = False, False, 0
        self._queue: queue.Queue = queue.Queue()
        self._abort = threading.Event()
        threading.Thread(target=self._produce, daemon=True).start()

    def _produce(self) -> None:
        behaviour = self.llm.behaviour
        prefill = None if math.isinf(behaviour.prefill_s) else behaviour.prefill_s
        if self._abort.wait(prefill):
            self._cancelled("", 0)
            return
        text = ""
        for i, piece in enumerate(behaviour.pieces):
            if i and self._abort.wait(behaviour.delay):
                self._cancelled(text, i)
                return
            text += piece
            last = i == len(behaviour.pieces) - 1
            self._queue.put((_Completion(text, i + 1, "stop" if last else None), last))

    def _cancelled(self, text: str, tokens: int) -> None:
        if not self.llm.behaviour.abort_ignored:
            self._queue.put((_Completion(text, tokens, "cancelled"), True))

    def __iter__(self) -> _Result:
        return self

    def __next__(self) -> types.SimpleNamespace:
        if self.finished:
            raise StopIteration
        completion, final = self._queue.get()  # no timeout, as in TensorRT-LLM
        self.finished = final
        self.consumed += 1
        return types.SimpleNamespace(outputs=[completion], finished=final)

    def abort(self) -> None:
        self.llm.socket.send(("abort", self.request_id))
        self.aborted = True
        self._abort.set()

    def release(self) -> None:
        """Test teardown: unblock an iterator whose executor never answers."""
        self._queue.put((_Completion("", 0, "cancelled"), True))


class LLM:
    """``tensorrt_llm.LLM`` (PyTorch backend) as far as the engine uses it."""

    behaviour = Behaviour()
    instances: list[LLM] = []

    def __init__(self, *, model: str, max_num_tokens: int = 8192, **kwargs) -> None:
        from transformers import AutoProcessor

        self.kwargs = dict(model=model, max_num_tokens=max_num_tokens, **kwargs)
        self.max_num_tokens = max_num_tokens
        self.behaviour = type(self).behaviour
        self.processor = AutoProcessor.from_pretrained(model)
        self.socket = _Socket(self.behaviour.socket_hold_s)
        self.calls: list[tuple] = []
        self.prompt_tokens: list[int] = []
        self.results: list[_Result] = []
        self.shut_down = False
        LLM.instances.append(self)

    def generate_async(self, inputs: dict, sampling_params=None, streaming: bool = False):
        if self.shut_down:
            raise RuntimeError("LLM is shutting down")
        tokens = self._count_tokens(inputs)
        if tokens > self.max_num_tokens:
            raise ValueError(
                f"The sum of prompt length ({tokens}), query length (0) should not exceed "
                f"max_num_tokens ({self.max_num_tokens})"
            )
        request_id = len(self.calls) + 1
        self.socket.send(("submit", request_id))
        self.calls.append((inputs, sampling_params, streaming))
        self.prompt_tokens.append(tokens)
        result = _Result(self, request_id)
        self.results.append(result)
        return result

    def _count_tokens(self, inputs: dict) -> int:
        images = (inputs.get("multi_modal_data") or {}).get("image")
        processed = self.processor(
            text=[inputs["prompt"]],
            images=images,
            return_tensors="pt",
            **inputs.get("mm_processor_kwargs", {}),
        )
        return int(processed["input_ids"].shape[-1])

    def shutdown(self) -> None:
        if not self.shut_down:
            for result in self.results:  # proxy.pre_shutdown aborts every request
                if not result.finished:
                    result.abort()
            self.socket.send(("shutdown",))
            self.shut_down = True

    def release_all(self) -> None:
        for result in self.results:
            result.release()


class SamplingParams:
    """Keeps its keyword arguments; tells whether they decode greedily in each release."""

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs

    @property
    def greedy_in_1_0(self) -> bool:
        """1.0: ``SamplingParams._greedy_decoding`` needs ``top_k`` None or 1 and ``top_p`` None
        or 0; the torch sampler's ``request_strategy`` picks top-p first whenever it is set,
        then top-k, else greedy (top-k of 1 is an argmax)."""
        top_k, top_p = self.kwargs.get("top_k"), self.kwargs.get("top_p")
        return top_k in (None, 1) and top_p in (None, 0.0)

    @property
    def greedy_from_1_1(self) -> bool:
        """From 1.1: ``params_imply_greedy_decoding``: all unset, or ``top_k == 1``, or
        ``top_p == 0``, or ``temperature == 0``."""
        k, p, t = (self.kwargs.get(n) for n in ("top_k", "top_p", "temperature"))
        return (k is None and p is None and t is None) or k == 1 or p == 0.0 or t == 0


class KvCacheConfig:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs


def stand_in_module(behaviour: Behaviour) -> types.ModuleType:
    """A fresh ``tensorrt_llm`` module whose ``LLM`` answers with ``behaviour``."""
    trt = types.ModuleType("tensorrt_llm")
    llmapi = types.ModuleType("tensorrt_llm.llmapi")
    trt.__version__ = behaviour.version
    trt.LLM = type("LLM", (LLM,), {"behaviour": behaviour})
    trt.SamplingParams = SamplingParams
    llmapi.KvCacheConfig = KvCacheConfig
    trt.llmapi = llmapi
    return trt
