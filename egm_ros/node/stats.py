"""Running request statistics for /diagnostics: counts by status and latency percentiles over
a recent window. ROS-free and thread-safe."""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

from egm_ros.core.types import Status

#: The statuses that say how the engine is doing: an answer, or an engine fault. The others
#: (bad input, no frame, busy, cancelled) are about the request, not the engine.
ENGINE_STATUSES = frozenset(
    {
        Status.OK,
        Status.NOT_FOUND,
        Status.ENGINE_ERROR,
        Status.ENGINE_UNAVAILABLE,
        Status.MALFORMED_OUTPUT,
        Status.TIMEOUT,
    }
)


class RequestStats:
    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=window)
        self.by_status: Counter[str] = Counter()
        self.total = 0
        #: The engine's last word (status, message): the latest result with a status of
        #: ``ENGINE_STATUSES``, or a check made at configure; None before either.
        self.engine_health: tuple[Status, str] | None = None

    def record(self, status: Status, total_ms: float, message: str = "") -> None:
        with self._lock:
            self.total += 1
            self.by_status[status.value] += 1
            if status in (Status.OK, Status.NOT_FOUND):
                self._latencies.append(total_ms)
            if status in ENGINE_STATUSES:
                self.engine_health = (status, message)

    def note_engine(self, status: Status, message: str) -> None:
        """What a check outside any request found (e.g. a server that does not answer)."""
        with self._lock:
            self.engine_health = (status, message)

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
