"""The 3D step's bench rows (shape and what they measure; no timing asserted) and its goal."""

from __future__ import annotations

from dev.bench import depth_step
from dev.bench.summary import goals, tables


def test_rows_for_each_encoding_and_target_with_a_real_lift() -> None:
    section = depth_step.run(2)
    rows = section["rows"]
    assert [(r["encoding"], r["target"]) for r in rows] == [
        ("16UC1", "scene object"),
        ("16UC1", "quarter frame"),
        ("32FC1", "scene object"),
        ("32FC1", "quarter frame"),
    ]
    assert all(r["resolution"] == "640x480" and r["p95_ms"] >= r["p50_ms"] > 0 for r in rows)
    assert rows[1]["box_px"] == "320x240" and section["goal_p50_ms"] == 2.0
    assert "quarter frame" in depth_step.table(section)


def test_the_goal_row_takes_the_worst_row() -> None:
    rows = [{"p50_ms": 0.8}, {"p50_ms": 2.4}]
    report = {
        "meta": {"model": {"name": "m", "weights": "w"}, "max_new_tokens": 1, "machine": "x"},
        "overhead": {"rows": [], "depth_3d": {"goal_p50_ms": 2.0, "rows": rows}},
        "end_to_end": {},
        "concurrency": {},
        "memory": {},
        "multi_node": {},
        "goals": [],
    }
    (row,) = goals(report)
    assert row["measured"] == 2.4 and row["met"] is False and row["target"] == "<= 2 ms"
    report["overhead"]["depth_3d"]["rows"] = [
        {
            **r,
            "resolution": "640x480",
            "encoding": "16UC1",
            "target": "t",
            "box_px": "1x1",
            "p95_ms": 3.0,
            "cpu_p50_ms": 1.0,
        }
        for r in rows
    ]
    assert "3D step (use_depth)" in tables(report)
