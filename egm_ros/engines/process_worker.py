"""The worker side of :mod:`egm_ros.engines.process_engine`: the process that builds an engine
and serves the calls its parent sends over the pipe, and what crosses that pipe."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from egm_ros.core.engine import Engine, EngineRequest
from egm_ros.core.types import GroundingError, Status

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from egm_ros.engines import EngineSettings

log = logging.getLogger(__name__)


@dataclass
class WireRequest:
    """An :class:`EngineRequest` as it crosses the pipe: without its callables and its cancel
    event, which stay in the parent; the flags say which of them the worker stands in for."""

    request: EngineRequest  # stop_check kept only where it pickles
    remote_stop: bool  # the parent evaluates stop_check and sends "stop"
    progress: bool  # report progress (on_progress, or the parent's stop_check, needs it)


@dataclass(frozen=True)
class EngineInfo:
    """What the parent answers for the engine in the worker without asking it."""

    backend: str
    model_name: str
    model_config: dict | None
    processor_max_pixels: int | None
    takes_encoded: bool
    resizes_encoded: bool


def serve(conn: Connection, settings: EngineSettings) -> None:
    """The worker process: build the engine, say so, then serve calls until ``close`` or the
    parent goes away (the pipe closes)."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if settings.worker_nice > 0:
        os.nice(settings.worker_nice)  # the caller's callbacks first (EngineSettings)
    from egm_ros.engines import create_engine

    try:
        engine = create_engine(settings)
    except GroundingError as err:
        conn.send(("failed", err.status.value, err.message))
        return
    except Exception as err:  # noqa: BLE001 - whatever fails, the parent gets one line
        conn.send(("failed", Status.ENGINE_UNAVAILABLE.value, f"{type(err).__name__}: {err}"))
        return
    info = EngineInfo(
        engine.backend,
        engine.model_name,
        engine.model_config,
        engine.processor_max_pixels,
        engine.takes_encoded,
        engine.resizes_encoded,
    )
    # The model and the libraries live as long as the process: frozen, the collector stops
    # re-scanning them in every full collection (100 to 300 ms each here, with EGM-Tiny
    # loaded; none over 10 ms once frozen).
    gc.collect()
    gc.freeze()
    conn.send(("ready", info))
    try:
        _Worker(conn, engine).run()
    finally:
        engine.close()


class _Worker:
    """Runs each call in a thread of its own (the engine batches concurrent calls)."""

    def __init__(self, conn: Connection, engine: Engine) -> None:
        self.conn = conn
        self.engine = engine
        self.lock = threading.Lock()
        self.events: dict[tuple[int, int], tuple[threading.Event, threading.Event]] = {}
        self.threads: list[threading.Thread] = []

    def run(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if message[0] == "close":
                break
            if message[0] == "generate":
                self._start(*message[1:])
            elif (events := self.events.get((message[1], message[2]))) is not None:
                cancel, stop = events
                (cancel if message[0] == "cancel" else stop).set()
        for thread in self.threads:
            thread.join()

    def send(self, message: tuple) -> None:
        try:
            with self.lock:
                self.conn.send(message)
        except (OSError, ValueError):
            pass  # the parent is gone; run() ends on its next recv

    def _start(self, call_id: int, wire: list[WireRequest], timeout: float) -> None:
        requests = [self._request(call_id, i, w) for i, w in enumerate(wire)]
        thread = threading.Thread(
            target=self._call, args=(call_id, requests, timeout), name=f"egm-call-{call_id}"
        )
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def _request(self, call_id: int, index: int, wire: WireRequest) -> EngineRequest:
        cancel, stop = threading.Event(), threading.Event()
        self.events[(call_id, index)] = (cancel, stop)
        progress = None
        if wire.progress:

            def progress(tokens: int, text: str) -> None:
                self.send(("progress", call_id, index, tokens, text))

        check = _StopWhenTold(stop) if wire.remote_stop else wire.request.stop_check
        return replace(wire.request, stop_check=check, on_progress=progress, cancel=cancel)

    def _call(self, call_id: int, requests: list[EngineRequest], timeout: float) -> None:
        try:
            outputs = self.engine.generate(requests, timeout)
            self.send(("result", call_id, outputs, self.engine.model_name))
        except GroundingError as err:
            self.send(("error", call_id, err.status.value, err.message))
        except Exception as err:  # noqa: BLE001 - every call gets an answer
            log.exception("generation failed in the engine process")
            self.send(("error", call_id, Status.ENGINE_ERROR.value, f"{type(err).__name__}: {err}"))
        finally:
            for i in range(len(requests)):
                self.events.pop((call_id, i), None)


@dataclass(frozen=True)
class _StopWhenTold:
    """The worker's stand-in for a stop check that stayed in the parent."""

    told: threading.Event

    def __call__(self, text: str) -> bool:
        return self.told.is_set()
