"""The bounded work queue: several requests in flight, 'full' said at once, workers survive
a failing handler, close serves what was queued."""

from __future__ import annotations

import threading
import time

from egm_ros.node.work_queue import WorkQueue


def test_workers_run_requests_concurrently_and_full_is_immediate() -> None:
    release = threading.Event()
    started: list[int] = []
    both_started = threading.Event()

    def handler(item: int) -> None:
        started.append(item)
        if len(started) == 2:
            both_started.set()
        release.wait(10)

    q: WorkQueue[int] = WorkQueue(handler, maxsize=1, workers=2)
    assert q.submit(1)
    _wait(lambda: q.in_flight == 1)
    assert q.submit(2)
    assert both_started.wait(5)
    assert q.in_flight == 2
    assert q.submit(3)  # waits in the queue
    assert not q.submit(4)  # full: refused at once
    assert q.high_water == 3
    release.set()
    q.close()
    assert sorted(started) == [1, 2, 3]


def _wait(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.005)


def test_a_failing_handler_does_not_kill_the_worker() -> None:
    done: list[int] = []

    def handler(item: int) -> None:
        if item == 0:
            raise RuntimeError("boom")
        done.append(item)

    q: WorkQueue[int] = WorkQueue(handler, maxsize=10, workers=1)
    for i in range(3):
        assert q.submit(i)
    q.close()
    assert done == [1, 2]


def test_resize_changes_how_many_may_wait_from_the_next_submit() -> None:
    release = threading.Event()
    q: WorkQueue[int] = WorkQueue(lambda item: release.wait(10), maxsize=8, workers=1)
    assert q.submit(0)
    _wait(lambda: q.in_flight == 1)
    q.resize(1)
    assert q.maxsize == 1
    assert q.submit(1)
    assert not q.submit(2)  # 8 could wait before; now only 1
    q.resize(3)
    assert q.submit(3) and q.submit(4) and not q.submit(5)
    q.resize(1)  # below what waits: those stay, new ones are refused
    assert q.depth == 3 and not q.submit(6)
    release.set()
    q.close()
    assert q.depth == 0
