"""Any in-process engine in a worker process of its own, behind the same
:class:`~egm_ros.core.engine.Engine` interface.

Why: transformers' ``generate`` runs one Python loop iteration per token. In the grounding
node's process that loop holds the interpreter lock most of the time, and the ROS executor's
image and command callbacks wait for it: a camera's frames arrive late or not at all while a
model generates (issue 21). In a process of its own the model has its own interpreter; the
node's process only sends requests and receives answers.

``create_engine`` chooses it (``EngineSettings.own_process``; by default for ``embedded`` and
``transformers``: vLLM's V1 engine core and TensorRT-LLM's executor worker already run in
processes of their own). The node, the grounder and the CLIs never know.

How: the worker process (:mod:`egm_ros.engines.process_worker`) is started with ``spawn`` (a
fresh interpreter: no copy of the parent's threads, locks or ROS context) and builds the engine
with :func:`create_engine` from the same settings. Parent and worker talk over one duplex pipe:

* parent -> worker: ``generate`` (a call id, the requests without their callables, the
  timeout), ``cancel`` (a request of a call), ``stop`` (its answer is complete), ``close``;
* worker -> parent: ``ready`` (model name, config, pixel limit) or ``failed`` once, then
  ``progress`` (tokens and text so far) and ``result`` (with the model name) or ``error``
  (status and message) per call.

A request's ``cancel`` event is watched in the caller's thread and sent on; ``on_progress`` is
called in the parent with what the worker reports; ``stop_check`` goes to the worker when it
is the grounder's (``AnswerComplete``) and is otherwise evaluated in the parent on each progress
report. The worker answers timeouts itself (the engine inside has the same deadline); the
caller gives it ``grace_s`` more, then answers ``timeout`` and cancels. A worker that exits
fails every call in flight, and every later one, with ``engine_unavailable``.

The pipe carries pickles (``multiprocessing.connection``) between the node and the worker it
spawned, and nothing else: both ends are this code, and what it pickles is its own objects
(frames and prompts are data inside them), so no byte from a camera or a user is ever read as a
pickle.

A script that creates this engine must guard its entry with ``if __name__ == "__main__":``
(``spawn`` imports the main module again in the worker), as vLLM and TensorRT-LLM require too.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from egm_ros.core.engine import Engine, EngineOutput, EngineRequest
from egm_ros.core.parsing import AnswerComplete
from egm_ros.core.types import GroundingError, Status
from egm_ros.engines.batching import settle
from egm_ros.engines.process_worker import EngineInfo, WireRequest, serve

if TYPE_CHECKING:
    from egm_ros.engines import EngineSettings

log = logging.getLogger(__name__)

#: How often a waiting caller looks at its requests' cancel events.
_POLL_S = 0.05
_CTX = multiprocessing.get_context("spawn")


def to_wire(request: EngineRequest) -> WireRequest:
    check = request.stop_check
    # The grounder's stop check is a plain dataclass the worker rebuilds; any other callable (a
    # lambda, a closure) stays here and is evaluated on each progress report. Chosen by type,
    # not by trying pickle.dumps: the package keeps pickle off its modules (test_source_safety).
    sent = check if isinstance(check, AnswerComplete) else None
    remote = check is not None and sent is None
    bare = replace(request, stop_check=sent, on_progress=None, cancel=None)
    return WireRequest(bare, remote_stop=remote, progress=request.on_progress is not None or remote)


@dataclass
class _Call:
    """One ``generate`` in flight, as the parent tracks it."""

    requests: Sequence[EngineRequest]
    #: The requests whose stop check stayed here (it does not pickle).
    remote_stop: set[int] = field(default_factory=set)
    future: Future[list[EngineOutput]] = field(default_factory=Future)
    cancel_sent: set[int] = field(default_factory=set)
    stop_sent: set[int] = field(default_factory=set)


class ProcessEngine(Engine):
    """The engine ``settings`` names, built and run in a worker process. Thread-safe."""

    def __init__(
        self,
        settings: EngineSettings,
        *,
        start_timeout: float = 900.0,
        grace_s: float = 5.0,
    ) -> None:
        self.grace_s = grace_s
        self._send_lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._calls_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False
        self._exit_reason = ""
        inner = replace(settings, own_process=False)
        self._conn, child = _CTX.Pipe()
        self._proc = _CTX.Process(
            target=serve, args=(child, inner), name=f"egm-engine-{settings.backend}", daemon=True
        )
        self._proc.start()
        child.close()
        self.info = self._wait_ready(start_timeout)
        self.backend = self.info.backend
        self.takes_encoded = self.info.takes_encoded
        self.resizes_encoded = self.info.resizes_encoded
        #: Kept up to date from each answer (a server's default model is known only then).
        self._model_name = self.info.model_name
        self._reader = threading.Thread(target=self._read, name="egm-engine-reader", daemon=True)
        self._reader.start()

    def _wait_ready(self, timeout: float) -> EngineInfo:
        """The worker's ``ready`` message; its ``failed`` status, or its exit, as an error."""
        deadline = time.monotonic() + timeout
        while not self._conn.poll(0.2):
            if not self._proc.is_alive() or time.monotonic() > deadline:
                self._stop_process(0)
                why = f"exit code {self._proc.exitcode}" if self._proc.exitcode else "timeout"
                raise GroundingError(
                    Status.ENGINE_UNAVAILABLE, f"the engine process did not start ({why})"
                )
        try:
            message = self._conn.recv()
        except (EOFError, OSError):
            message = ("failed", Status.ENGINE_UNAVAILABLE.value, "the engine process exited")
        if message[0] != "ready":
            self._stop_process(5)
            raise GroundingError(Status(message[1]), message[2])
        return message[1]

    # ----------------------------------------------------------------- Engine
    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def model_config(self) -> dict | None:
        return self.info.model_config

    @property
    def processor_max_pixels(self) -> int | None:
        return self.info.processor_max_pixels

    @property
    def pid(self) -> int | None:
        """The worker process's id."""
        return self._proc.pid

    def health(self) -> bool:
        return not self._closed and self._proc.is_alive()

    def generate(self, requests: Sequence[EngineRequest], timeout: float) -> list[EngineOutput]:
        if not self.health():
            raise GroundingError(Status.ENGINE_UNAVAILABLE, self._unavailable())
        call_id = next(self._ids)
        wire = [to_wire(r) for r in requests]
        call = _Call(requests, {i for i, w in enumerate(wire) if w.remote_stop})
        with self._calls_lock:
            self._calls[call_id] = call
        try:
            self._send(("generate", call_id, wire, timeout))
            return self._wait(call_id, call, timeout)
        finally:
            with self._calls_lock:
                self._calls.pop(call_id, None)

    def close(self) -> None:
        """Let the worker finish what it has (every call gets its answer), then stop it."""
        if self._closed:
            return
        self._closed = True
        try:
            self._send(("close",))
        except GroundingError:
            pass  # already gone
        self._stop_process(60)
        self._reader.join(5)

    # ----------------------------------------------------------------- parent side
    def _send(self, message: tuple) -> None:
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError) as err:  # ValueError: the connection is closed
            raise GroundingError(Status.ENGINE_UNAVAILABLE, self._unavailable()) from err

    def _unavailable(self) -> str:
        if self._closed:
            return "engine is closed"
        return self._exit_reason or "the engine process exited"

    def _wait(self, call_id: int, call: _Call, timeout: float) -> list[EngineOutput]:
        """The worker's answer; cancel events are passed on while waiting."""
        deadline = time.monotonic() + timeout + self.grace_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._cancel(call_id, call, range(len(call.requests)))
                raise GroundingError(Status.TIMEOUT, f"no answer within {timeout:g} s")
            try:
                return settle(call.future, min(_POLL_S, remaining))
            except TimeoutError:
                wanted = [
                    i
                    for i, r in enumerate(call.requests)
                    if r.cancel is not None and r.cancel.is_set()
                ]
                self._cancel(call_id, call, wanted)

    def _cancel(self, call_id: int, call: _Call, indices: Sequence[int]) -> None:
        for i in indices:
            if i not in call.cancel_sent:
                call.cancel_sent.add(i)
                try:
                    self._send(("cancel", call_id, i))
                except GroundingError:
                    return

    def _read(self) -> None:
        """The reader thread: answers and progress from the worker, until it exits."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            try:
                self._dispatch(message)
            except Exception:  # noqa: BLE001 - a caller's progress callback must not stop us
                log.exception("engine process message %r failed", message[0])
        self._proc.join(5)
        self._exit_reason = f"the engine process exited (exit code {self._proc.exitcode})"
        error = GroundingError(Status.ENGINE_UNAVAILABLE, self._unavailable())
        with self._calls_lock:
            calls = list(self._calls.values())
        for call in calls:
            if not call.future.done():
                call.future.set_exception(error)

    def _dispatch(self, message: tuple) -> None:
        kind, call_id = message[0], message[1]
        with self._calls_lock:
            call = self._calls.get(call_id)
        if call is None:
            return  # a call its caller gave up on
        if kind == "result":
            self._model_name = message[3] or self._model_name
            call.future.set_result(message[2])
        elif kind == "error":
            call.future.set_exception(GroundingError(Status(message[2]), message[3]))
        elif kind == "progress":
            self._progress(call_id, call, *message[2:])

    def _progress(self, call_id: int, call: _Call, index: int, tokens: int, text: str) -> None:
        request = call.requests[index]
        if request.on_progress is not None:
            request.on_progress(tokens, text)
        check = request.stop_check
        if index in call.remote_stop and index not in call.stop_sent and check and check(text):
            call.stop_sent.add(index)
            self._send(("stop", call_id, index))

    def _stop_process(self, timeout: float) -> None:
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._conn.close()
