"""Statistics of the developer tools: percentiles and latency summaries. Plain Python (no
numpy), so the helpers are unit-tested in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between the two nearest ranks
    (numpy's default)."""
    if not samples:
        return math.nan
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(float(v) for v in samples)  # numpy scalars too: the result is a float
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def percentiles(
    samples: Sequence[float], qs: Iterable[float] = (50, 90, 95, 99), digits: int = 1
) -> dict[str, float]:
    """``{"p50": ..., ..., "max": ..., "n": ...}``; empty for no samples."""
    if not samples:
        return {}
    out: dict[str, float] = {f"p{q:g}": round(percentile(samples, q), digits) for q in qs}
    out["max"] = round(max(samples), digits)
    out["n"] = len(samples)
    return out


def summary(samples: Sequence[float | None], digits: int = 2) -> dict[str, float | int]:
    """n, p50, p95, mean and max of latency samples in ms (NaN-free: empty gives n=0 only)."""
    values = [float(s) for s in samples if s is not None and not math.isnan(s)]
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), digits),
        "p95_ms": round(percentile(values, 95), digits),
        "mean_ms": round(sum(values) / len(values), digits),
        "max_ms": round(max(values), digits),
    }
