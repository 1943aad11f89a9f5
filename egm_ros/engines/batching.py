"""Micro-batching for in-process engines: the worker thread that owns a model takes the first
queued job, then whatever else arrives within a short window, up to a batch size, so concurrent
callers (the node's workers, a visible + amodal pair) share one forward pass."""

from __future__ import annotations

import queue
import time
from typing import TypeVar

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
