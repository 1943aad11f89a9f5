"""Micro-batching for in-process engines: the worker thread that owns a model takes the first
queued job, then whatever else arrives within a short window, up to a batch size, so concurrent
callers (the node's workers, a visible + amodal pair) share one forward pass.

:class:`BatchWorker` is that thread with its queue, futures, deadlines, cancel and error
mapping, shared by the engines that own a model in one thread (transformers, vLLM); each engine
adds only how it runs one batch."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar

from egm_ros.core.engine import EngineOutput, EngineRequest
from egm_ros.core.types import GroundingError, Status

log = logging.getLogger(__name__)

T = TypeVar("T")


def next_batch(
    jobs: queue.Queue[T | None],
    max_size: int,
    window_s: float,
    *,
    expect: int = 1,
    linger_s: float = 0.0,
) -> list[T] | None:
    """Block for one job, then collect more for up to ``window_s``. ``None`` when the queue
    holds the stop marker (``None``) first; a marker met later is put back for the next call.

    ``expect`` and ``linger_s``: while fewer than ``expect`` jobs are collected, wait up to
    ``linger_s`` instead of ``window_s``. Callers that keep several requests in flight get their
    answers together and send the next ones within a few milliseconds of each other, but not
    always within the short window; expecting the previous batch's size keeps their batches
    whole, and a lone caller (``expect`` 1) waits no longer than before."""
    first = jobs.get()
    if first is None:
        return None
    batch = [first]
    start = time.monotonic()
    short_end = start + window_s
    long_end = start + max(window_s, linger_s)
    while len(batch) < max_size:
        end = long_end if len(batch) < expect else short_end
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        try:
            job = jobs.get(timeout=remaining)
        except queue.Empty:
            break
        if job is None:
            jobs.put(None)
            break
        batch.append(job)
    return batch


def settle(future: Future[T], timeout: float | None) -> T:
    """``future.result(timeout)``, except that a stored :class:`GroundingError` is raised as a
    detached copy: raising the stored one from a frame that holds its future makes a reference
    cycle (see :meth:`GroundingError.detached`). ``TimeoutError`` when not done in time."""
    error = future.exception(timeout)
    if isinstance(error, GroundingError):
        raise error.detached()
    return future.result()


@dataclass
class Job:
    """One request in a :class:`BatchWorker`: its deadline, the future its caller waits on,
    and ``abort``, set once the caller has stopped waiting (answered, timed out, or a sibling
    request of the same call failed)."""

    request: EngineRequest
    deadline: float
    future: Future[EngineOutput] = field(default_factory=Future)
    abort: threading.Event = field(default_factory=threading.Event)


#: Runs one batch on the model; one output per job, in order.
RunBatch = Callable[[list[Job]], list[EngineOutput]]


class BatchWorker:
    """The skeleton of an in-process engine whose model is used by one thread only
    (transformers, vLLM's ``LLM``): callers queue jobs and wait on futures; the thread takes
    them in batches (:func:`next_batch`) and runs ``run_batch`` on each.

    ``batch_linger_s``: after a batch of N, wait up to this long for N again (see
    :func:`next_batch`). ``grace_s``: how long past the deadline a caller waits for the engine to
    answer the deadline itself (an engine that checks it between tokens ends with a clean
    status)."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        name: str,
        max_batch_size: int,
        batch_window_s: float,
        batch_linger_s: float = 0.0,
        grace_s: float = 0.0,
        failure: str = "generation failed",
    ) -> None:
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self.batch_linger_s = batch_linger_s
        self.grace_s = grace_s
        self._failure = failure
        self._last_batch_size = 1
        self.batch_sizes: list[int] = []  # sizes of the batches run (for tests and benchmarks)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def generate(self, requests: Sequence[EngineRequest], timeout: float) -> list[EngineOutput]:
        """The :meth:`egm_ros.core.engine.Engine.generate` of the engine that owns this."""
        if not self.alive:
            raise GroundingError(Status.ENGINE_UNAVAILABLE, "engine is closed")
        deadline = time.monotonic() + timeout
        jobs = [Job(r, deadline) for r in requests]
        for job in jobs:
            self._queue.put(job)
        try:
            return [self._result(job, deadline, timeout) for job in jobs]
        finally:
            for job in jobs:
                job.abort.set()

    def _result(self, job: Job, deadline: float, timeout: float) -> EngineOutput:
        try:
            return settle(job.future, max(0.0, deadline - time.monotonic()) + self.grace_s)
        except TimeoutError:
            raise GroundingError(Status.TIMEOUT, f"no answer within {timeout:g} s") from None

    def close(self, timeout: float) -> None:
        """Finish the batch in hand, then stop the thread. Idempotent."""
        if self.alive:
            self._queue.put(None)
            self._thread.join(timeout)

    def _serve(self) -> None:
        while (
            batch := next_batch(
                self._queue,
                self.max_batch_size,
                self.batch_window_s,
                expect=self._last_batch_size,
                linger_s=self.batch_linger_s,
            )
        ) is not None:
            self._last_batch_size = len(batch)
            live = [job for job in batch if _wanted(job)]
            if live:
                self._run(live)

    def _run(self, jobs: list[Job]) -> None:
        self.batch_sizes.append(len(jobs))
        try:
            outputs = self._run_batch(jobs)
            for job, output in zip(jobs, outputs, strict=True):
                job.future.set_result(output)
        except GroundingError as err:
            _fail(jobs, err)
        except Exception as err:  # noqa: BLE001 - the worker must survive a bad batch
            log.exception(self._failure)
            _fail(jobs, GroundingError(Status.ENGINE_ERROR, f"{self._failure}: {err}"))


def _wanted(job: Job) -> bool:
    """False for a job nobody waits for, and for a cancelled one (answered cancelled now)."""
    if job.abort.is_set():
        return False
    cancel = job.request.cancel
    if cancel is not None and cancel.is_set():
        job.future.set_exception(GroundingError(Status.CANCELLED, "cancelled"))  # never raised
        return False
    return True


def _fail(jobs: list[Job], error: GroundingError) -> None:
    """Each future gets a copy without the traceback (the batch's frames, tensors and all)."""
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error.detached())
