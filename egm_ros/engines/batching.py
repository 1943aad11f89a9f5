"""Micro-batching for in-process engines: the worker thread that owns a model takes the first
queued job, then whatever else arrives within a short window, up to a batch size, so concurrent
callers (the node's workers, a visible + amodal pair) share one forward pass."""

from __future__ import annotations

import queue
import time
from typing import TypeVar

T = TypeVar("T")


def next_batch(jobs: queue.Queue[T | None], max_size: int, window_s: float) -> list[T] | None:
    """Block for one job, then collect more for up to ``window_s``. ``None`` when the queue
    holds the stop marker (``None``) first; a marker met later is put back for the next call."""
    first = jobs.get()
    if first is None:
        return None
    batch = [first]
    end = time.monotonic() + window_s
    while len(batch) < max_size:
        try:
            job = jobs.get(timeout=max(0.0, end - time.monotonic()))
        except queue.Empty:
            break
        if job is None:
            jobs.put(None)
            break
        batch.append(job)
    return batch
