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
