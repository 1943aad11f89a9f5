"""Running request statistics for /diagnostics: counts by status and latency percentiles over
a recent window. ROS-free and thread-safe."""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

from egm_ros.core.types import Status


class RequestStats:
    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=window)
        self.by_status: Counter[str] = Counter()
        self.total = 0

    def record(self, status: Status, total_ms: float) -> None:
        with self._lock:
            self.total += 1
            self.by_status[status.value] += 1
            if status in (Status.OK, Status.NOT_FOUND):
                self._latencies.append(total_ms)

    @property
    def errors(self) -> int:
        with self._lock:
            return sum(n for s, n in self.by_status.items() if Status(s).is_error)

    def percentiles(self, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
        """Latency percentiles (ms) of recent successful requests; empty before the first."""
        with self._lock:
            values = np.fromiter(self._latencies, dtype=float)
        if values.size == 0:
            return {}
        return {f"p{q:g}": float(v) for q, v in zip(qs, np.percentile(values, qs), strict=True)}
