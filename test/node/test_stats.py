"""Request statistics for /diagnostics."""

from __future__ import annotations

import pytest

from egm_ros.core.types import Status
from egm_ros.node.stats import RequestStats


def test_counts_errors_and_percentiles_of_answers_only() -> None:
    stats = RequestStats(window=100)
    assert stats.percentiles() == {}
    for ms in range(1, 101):
        stats.record(Status.OK, float(ms))
    stats.record(Status.NOT_FOUND, 50.0)
    stats.record(Status.BUSY, 0.1)
    stats.record(Status.TIMEOUT, 9999.0)
    assert stats.total == 103
    assert stats.errors == 2
    assert stats.by_status["busy"] == 1
    p = stats.percentiles()
    assert p["p50"] == pytest.approx(51.0, abs=1.0)
    assert p["p99"] < 101  # the timeout's 9999 ms is not a latency sample
