"""Micro-batch collection for the in-process engines."""

from __future__ import annotations

import queue
import threading
import time

from egm_ros.engines.batching import next_batch


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
