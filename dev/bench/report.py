"""Helpers shared by the benchmarks: the JSON report's shape and the short table ``make bench``
prints (latency summaries are :mod:`dev.stats`). Kept free of ROS and torch so they are
unit-tested in milliseconds."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: The EGM paper's average latency per request (EGM-Qwen3-VL-8B on RefCOCO), the yardstick.
PAPER_MS = 737.0

#: Top-level sections of the report; each holds its numbers or ``{"skipped": reason}``.
SECTIONS = (
    "meta",
    "overhead",
    "end_to_end",
    "concurrency",
    "memory",
    "multi_node",
    "side_by_side",
    "goals",
)


def skipped(reason: str) -> dict[str, str]:
    """The value of a section that did not run, with the reason (printed and kept in JSON)."""
    return {"skipped": reason}


def missing_keys(report: Mapping[str, Any]) -> list[str]:
    """Sections absent from ``report`` (the schema check of the tests and of ``make bench``)."""
    return [name for name in SECTIONS if name not in report]


def goal(name: str, target: str, measured: float | str | None, met: bool | None) -> dict:
    """One row of the goals table; ``met`` None means not measured in this run."""
    return {"goal": name, "target": target, "measured": measured, "met": met}


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain, right-aligned text table (numbers keep their JSON rounding)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, expected {len(headers)}: {row}")
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [" ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append(" ".join("-" * w for w in widths))
    lines += [" ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The same table in Markdown, for the README."""
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def write_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write the report as indented JSON (creating the folder); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return out


def add_speedup(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each concurrency row its throughput relative to the row with 1 in flight (the
    batching goal: 4 in flight at least 2x)."""
    base = next((r.get("throughput_rps") for r in rows if r.get("in_flight") == 1), None)
    for r in rows:
        tp = r.get("throughput_rps")
        r["x_of_1_in_flight"] = round(tp / base, 2) if base and tp is not None else None
    return rows
