"""The developer tools' statistics (dev.stats): percentiles as numpy computes them, latency
summaries that skip missing samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dev.stats import percentile, percentiles, summary


@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50),
    st.floats(0, 100),
)
def test_percentile_matches_numpy(samples: list[float], q: float) -> None:
    assert percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)), abs=1e-6)


def test_percentile_edges() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_ignores_missing_samples() -> None:
    assert summary([]) == {"n": 0}
    assert summary([None, float("nan")]) == {"n": 0}
    s = summary([10.0, 20.0, None, 30.0])
    assert s == {"n": 3, "p50_ms": 20.0, "p95_ms": 29.0, "mean_ms": 20.0, "max_ms": 30.0}


def test_percentiles_name_each_quantile_the_max_and_the_count() -> None:
    assert percentiles([]) == {}
    values = [float(v) for v in range(1, 101)]
    out = percentiles(values)
    assert out == {"p50": 50.5, "p90": 90.1, "p95": 95.0, "p99": 99.0, "max": 100.0, "n": 100}


def test_numpy_samples_give_plain_floats_that_json_can_write() -> None:
    value = percentile(list(np.array([1.0, 2.0, 3.0])), 50)
    assert type(value) is float and value == 2.0
