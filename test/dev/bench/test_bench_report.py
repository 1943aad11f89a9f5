"""The benchmark helpers' logic (tables, the report's shape, goals):
no ROS, no model, no timing asserted."""

from __future__ import annotations

import json

import pytest

from dev.bench.report import (
    SECTIONS,
    add_speedup,
    format_table,
    markdown_table,
    missing_keys,
    skipped,
    write_report,
)
from dev.bench.summary import goals, tables


def test_format_table_aligns_columns_and_rejects_ragged_rows() -> None:
    text = format_table(("name", "ms"), [("a", 1.234), ("long name", 1234.5), ("c", None)])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # every line as wide as the widest
    assert lines[2].endswith("1.23") and "1,234" in lines[3] and lines[4].endswith("-")
    with pytest.raises(ValueError):
        format_table(("a", "b"), [(1,)])


def test_markdown_table_marks_failed_goals() -> None:
    text = markdown_table(("goal", "met"), [("x", True), ("y", False)])
    assert text.splitlines()[:2] == ["| goal | met |", "| --- | --- |"]
    assert "| y | NO |" in text and "| x | yes |" in text


def test_add_speedup_is_relative_to_one_in_flight() -> None:
    rows = add_speedup(
        [
            {"in_flight": 1, "throughput_rps": 2.0},
            {"in_flight": 4, "throughput_rps": 5.0},
            {"in_flight": 8, "throughput_rps": None},
        ]
    )
    assert [r["x_of_1_in_flight"] for r in rows] == [1.0, 2.5, None]
    assert add_speedup([{"in_flight": 2, "throughput_rps": 1.0}])[0]["x_of_1_in_flight"] is None


def sample_report() -> dict:
    row = {
        "resolution": "1920x1080",
        "p95_ms": 5.0,
        "share_of_737ms_pct": 0.6,
        "copies_by_stage": {},
        "frame_mb": 5.9,
    }
    return {
        "meta": {
            "model": {"name": "m", "weights": "random"},
            "max_new_tokens": 8,
            "machine": "2 CPU cores",
        },
        "overhead": {
            "rows": [
                {**row, "input": "raw", "p50_ms": 4.0, "cpu_p50_ms": 6.0, "full_frame_copies": 1},
                {**row, "input": "compressed", "p50_ms": 9.0, "full_frame_copies": 4},
            ]
        },
        "end_to_end": {
            "embedded": {
                "end_to_end": {"n": 20, "p50_ms": 100.0, "p95_ms": 130.0},
                "split_p50_ms": {"waiting": 0.2, "preprocessing": 0.1, "inference": 95.0},
                "outside_node_ms": {"p50": 2.0, "p95": 7.5, "max": 9.0, "n": 20},
                "tokens_mean": 48.0,
            },
            "openai_vllm": skipped("--skip-vllm"),
        },
        "concurrency": {
            "embedded": add_speedup(
                [
                    {"in_flight": 1, "throughput_rps": 1.0, "p50_ms": 1, "p95_ms": 1},
                    {"in_flight": 4, "throughput_rps": 2.5, "p50_ms": 1, "p95_ms": 1},
                ]
            )
        },
        "memory": skipped("--skip-ros"),
        "multi_node": {
            "nodes": 3,
            "results_correct": True,
            "answers_identical_to_alone": "6/6",
            "shared_over_alone_p50": 1.5,
            "alone": {"n": 6, "p50_ms": 1.0, "p95_ms": 2.0},
            "shared": {"n": 6, "p50_ms": 1.5, "p95_ms": 2.0},
        },
        "side_by_side": {
            "mode": "amodal",
            "plain_client": [
                dict(in_flight=1, p50_ms=400.0, p95_ms=450.0, throughput_rps=2.5, tokens_mean=96.0)
            ],
            "egm_ros": [
                dict(in_flight=1, p50_ms=260.0, p95_ms=300.0, throughput_rps=3.8, tokens_mean=90.0)
            ],
            "amodal_latency_ratio_p50": 0.65,
            "answers_identical": True,
            "identical_answers": "20/20",
        },
        "goals": [],
    }


def test_goals_state_met_and_missed_targets() -> None:
    report = sample_report()
    by_name = {g["goal"]: g for g in goals(report)}
    assert by_name["node overhead 1920x1080 raw, p50"]["met"] is True
    assert by_name["node overhead 1920x1080 raw, CPU p50"]["met"] is False
    assert by_name["node overhead 1920x1080 compressed, p50"]["met"] is False
    assert by_name["full-frame copies per request, raw"]["measured"] == 1
    assert by_name["full-frame copies per request, compressed"]["met"] is False
    assert by_name["throughput 4 in flight / 1 in flight, embedded"]["measured"] == 2.5
    assert all(g["met"] for name, g in by_name.items() if "nodes" in name or "shared" in name)
    outside = by_name["round trip outside the node, embedded, p95"]
    assert (outside["measured"], outside["met"]) == (7.5, True)
    ratio = by_name["amodal p50, egm_ros / plain openai client, 1 in flight"]
    assert (ratio["measured"], ratio["met"]) == (0.65, False)
    assert not any("openai_vllm" in name for name in by_name)  # skipped: no row


def test_tables_print_every_section_and_the_skipped_ones(tmp_path) -> None:
    report = sample_report()
    report["goals"] = goals(report)
    assert not missing_keys(report)
    text = tables(report)
    for needle in (
        "node overhead",
        "end to end",
        "outside p95",
        "concurrency",
        "3 nodes, one vLLM server",
        "side by side",
        "boxes identical 20/20",
        "goals",
        "skipped",
    ):
        assert needle in text
    path = write_report(report, tmp_path / "sub" / "bench.json")
    assert json.loads(path.read_text())["goals"] == report["goals"]
    assert missing_keys({}) == list(SECTIONS)
