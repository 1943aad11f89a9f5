"""Micro-batch collection and the shared worker thread of the in-process engines."""

from __future__ import annotations

import gc
import queue
import threading
import time
import weakref

import pytest

from egm_ros.core.engine import EngineOutput, EngineRequest
from egm_ros.core.types import GroundingError, Status
from egm_ros.engines.batching import BatchWorker, Job, next_batch


def test_collects_what_arrives_within_the_window_up_to_the_size() -> None:
    q: queue.Queue = queue.Queue()
    for i in range(5):
        q.put(i)
    assert next_batch(q, max_size=3, window_s=0.01) == [0, 1, 2]
    threading.Timer(0.02, lambda: q.put(9)).start()
    assert next_batch(q, max_size=8, window_s=0.2) == [3, 4, 9]


def test_stop_marker_ends_after_the_current_batch() -> None:
    q: queue.Queue = queue.Queue()
    q.put(1)
    q.put(None)
    t0 = time.monotonic()
    assert next_batch(q, max_size=8, window_s=5.0) == [1]
    assert time.monotonic() - t0 < 1.0  # the marker cut the window short
    assert next_batch(q, max_size=8, window_s=5.0) is None


def test_expecting_the_previous_batch_size_waits_for_late_callers() -> None:
    q: queue.Queue = queue.Queue()
    q.put(1)
    for delay, item in ((0.05, 2), (0.1, 3)):
        threading.Timer(delay, lambda i=item: q.put(i)).start()
    # The short window alone would close after the first job; expecting 3 keeps it open.
    assert next_batch(q, max_size=8, window_s=0.001, expect=3, linger_s=5.0) == [1, 2, 3]


def test_a_lone_caller_is_not_held_by_the_linger() -> None:
    q: queue.Queue = queue.Queue()
    q.put(1)
    t0 = time.monotonic()
    assert next_batch(q, max_size=8, window_s=0.001, expect=1, linger_s=30.0) == [1]
    assert time.monotonic() - t0 < 5.0  # expecting one job, the 30 s linger never applies
    q.put(2)
    threading.Timer(0.05, lambda: q.put(3)).start()
    # Reaching the expected size, the batch closes at the short window's end.
    assert next_batch(q, max_size=8, window_s=0.001, expect=1, linger_s=30.0) == [2]
    assert next_batch(q, max_size=8, window_s=1.0) == [3]


# ---------------------------------------------------------------- the shared worker

IMAGE = None  # the worker never looks at the image


class Model:
    """Stands in for a model owned by the worker thread: echoes prompts, or fails as told."""

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.error: Exception | None = None

    def run_batch(self, jobs: list[Job]) -> list[EngineOutput]:
        self.threads.add(threading.current_thread().name)
        self.gate.wait(10)
        if self.error is not None:
            raise self.error
        return [EngineOutput(j.request.prompt.upper(), 1, 1.0) for j in jobs]


@pytest.fixture
def model_and_worker():
    model = Model()
    worker = BatchWorker(model.run_batch, name="test-worker", max_batch_size=8, batch_window_s=0.05)
    yield model, worker
    model.gate.set()
    worker.close(timeout=5)


def request(prompt: str, cancel: threading.Event | None = None) -> EngineRequest:
    return EngineRequest(image=IMAGE, prompt=prompt, cancel=cancel)


def test_one_call_is_one_batch_answered_in_order_by_the_owning_thread(model_and_worker) -> None:
    model, worker = model_and_worker
    outputs = worker.generate([request("a"), request("b"), request("c")], timeout=10)
    assert [o.text for o in outputs] == ["A", "B", "C"]
    assert worker.batch_sizes == [3]
    assert model.threads == {"test-worker"}


def test_concurrent_callers_share_a_batch(model_and_worker) -> None:
    model, worker = model_and_worker
    model.gate.clear()
    results: dict[str, str] = {}

    def call(prompt: str) -> None:
        results[prompt] = worker.generate([request(prompt)], timeout=10)[0].text

    threads = [threading.Thread(target=call, args=(p,)) for p in ("x", "y")]
    for t in threads:
        t.start()
    time.sleep(0.2)
    model.gate.set()
    for t in threads:
        t.join(10)
    assert results == {"x": "X", "y": "Y"}
    assert sum(worker.batch_sizes) == 2


def test_a_slow_batch_is_a_timeout_and_a_cancelled_request_is_never_run(model_and_worker) -> None:
    model, worker = model_and_worker
    model.gate.clear()
    with pytest.raises(GroundingError) as timeout:
        worker.generate([request("slow")], timeout=0.2)
    assert timeout.value.status is Status.TIMEOUT
    cancel = threading.Event()
    cancel.set()
    model.gate.set()
    with pytest.raises(GroundingError) as cancelled:
        worker.generate([request("never", cancel)], timeout=10)
    assert cancelled.value.status is Status.CANCELLED
    assert worker.batch_sizes == [1]  # only the slow one ran


def test_a_failing_batch_is_an_engine_error_and_the_worker_survives(model_and_worker) -> None:
    model, worker = model_and_worker
    model.error = RuntimeError("out of memory")
    with pytest.raises(GroundingError) as failed:
        worker.generate([request("a")], timeout=10)
    assert failed.value.status is Status.ENGINE_ERROR and "out of memory" in failed.value.message
    model.error = GroundingError(Status.CANCELLED, "cancelled mid-batch")
    with pytest.raises(GroundingError) as passed_on:
        worker.generate([request("b")], timeout=10)
    assert passed_on.value.status is Status.CANCELLED  # engine statuses pass unchanged
    model.error = None
    assert worker.generate([request("c")], timeout=10)[0].text == "C"


def test_a_closed_worker_is_engine_unavailable(model_and_worker) -> None:
    _, worker = model_and_worker
    worker.close(timeout=5)
    worker.close(timeout=5)  # idempotent
    with pytest.raises(GroundingError) as closed:
        worker.generate([request("a")], timeout=1)
    assert closed.value.status is Status.ENGINE_UNAVAILABLE


class Tensors:
    """Stands in for a batch's tensors (pixel values, KV cache): what a leak would keep."""


def test_a_failed_batch_leaves_no_reference_cycle_holding_its_tensors() -> None:
    """Issue 21's memory growth: a batch that timed out kept its tensors alive through the
    exception's traceback (its frames' locals), which the futures and the callers' frames held
    in a cycle; only Python's cyclic collector, which a busy process rarely runs on old
    objects, could free it. With the collector off, they must go when the caller is done."""
    held: list[weakref.ref] = []

    def run_batch(jobs: list[Job]) -> list[EngineOutput]:
        tensors = Tensors()  # a local of the failing frame, as transformers' inputs are
        held.append(weakref.ref(tensors))
        raise GroundingError(Status.TIMEOUT, "no complete answer before the deadline")

    worker = BatchWorker(run_batch, name="cycle-test", max_batch_size=8, batch_window_s=0.01)
    gc.collect()
    gc.disable()
    try:
        statuses = []
        for _ in range(3):
            try:
                worker.generate([request("a"), request("b")], timeout=10)
            except GroundingError as err:  # not pytest.raises: its record holds the traceback
                statuses.append(err.status)
        assert statuses == [Status.TIMEOUT] * 3
        assert len(held) == 3 and [ref() for ref in held] == [None] * 3
    finally:
        gc.enable()
        worker.close(timeout=5)
