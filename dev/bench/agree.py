"""Do consecutive ``make bench`` runs agree? Issue 17's check over several ``bench.json`` files:
each engine's 4-in-flight throughput ratio within +-20 % of the runs' mean (and the embedded
one at least 2x in every run), and the round trip outside the node at most 15 ms p95 in every
run. ``make bench`` keeps a copy of each report in ``out/bench/runs/``; by default this reads
the three newest there:

    python -m dev.bench.agree [FILE ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dev.bench.report import format_table

RUNS = Path("out/bench/runs")
#: How far each run's 4-in-flight ratio may be from the runs' mean, and the embedded floor.
SPREAD, EMBEDDED_FLOOR, OUTSIDE_P95_MS = 0.20, 2.0, 15.0


def ratio_of(report: dict[str, Any], engine: str) -> float | None:
    """The engine's 4-in-flight throughput over its 1-in-flight throughput, if measured."""
    rows = report.get("concurrency", {}).get(engine)
    if not isinstance(rows, list):
        return None
    by_level = {r.get("in_flight"): r.get("x_of_1_in_flight") for r in rows}
    return by_level.get(4)


def checks(reports: Sequence[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(what, the numbers per run, held) for each check."""
    out = []
    engines = sorted({e for r in reports for e, v in r.get("concurrency", {}).items() if v})
    for engine in engines:
        ratios = [ratio_of(r, engine) for r in reports]
        known = [x for x in ratios if x is not None]
        if len(known) < len(ratios):
            out.append((f"4 in flight / 1, {engine}: measured in every run", _runs(ratios), False))
            continue
        mean = sum(known) / len(known)
        held = all(abs(x - mean) <= SPREAD * mean for x in known)
        out.append((f"4 in flight / 1, {engine}, within 20 % of {mean:.2f}", _runs(ratios), held))
        if engine == "embedded":
            floor = all(x >= EMBEDDED_FLOOR for x in known)
            out.append((f"4 in flight / 1, {engine}, >= 2x", _runs(ratios), floor))
    measured = {e for r in reports for e, v in r.get("end_to_end", {}).items() if "end_to_end" in v}
    for engine in sorted(measured):
        p95 = [_outside_p95(r, engine) for r in reports]
        held = all(x is not None and x <= OUTSIDE_P95_MS for x in p95)
        out.append((f"outside the node p95 <= 15 ms, {engine}", _runs(p95), held))
    return out


def _outside_p95(report: dict[str, Any], engine: str) -> float | None:
    return report["end_to_end"].get(engine, {}).get("outside_node_ms", {}).get("p95")


def _runs(values: Sequence[float | None]) -> str:
    return ", ".join("-" if v is None else f"{v:g}" for v in values)


def newest(folder: Path, count: int = 3) -> list[Path]:
    return sorted(folder.glob("*.json"))[-count:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help=f"bench.json files (default: newest 3 in {RUNS})")
    args = parser.parse_args(argv)
    paths = [Path(f) for f in args.files] or newest(RUNS)
    if len(paths) < 2:
        print(f"need at least two reports, found {len(paths)}", file=sys.stderr)
        return 2
    reports = [json.loads(p.read_text()) for p in paths]
    print("runs: " + ", ".join(str(p) for p in paths))
    rows = checks(reports)
    print(format_table(("check", "per run", "held"), rows))
    agreed = all(held for _, _, held in rows)
    print(f"{len(paths)} runs {'agree' if agreed else 'do NOT agree'}")
    return 0 if agreed else 1


if __name__ == "__main__":
    sys.exit(main())
