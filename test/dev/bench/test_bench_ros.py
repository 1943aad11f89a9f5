"""The end-to-end benchmark's bookkeeping (summaries, routing checks) on
made-up records, and a tiny quick run of ``python -m dev.bench`` that must produce every key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dev.bench.report import SECTIONS
from dev.bench.ros_bench import (
    Camera,
    Record,
    latency_section,
    multi_node_section,
    routing_errors,
    throughput_row,
)

ROOT = Path(__file__).resolve().parents[3]


def record(i: int, ns: str = "/a", **kw) -> Record:
    r = Record(ns, f"{ns}-{i}", "the mug", sent=10.0, received=10.5 + i / 10)
    r.status, r.node_total_ms, r.inference_ms, r.tokens = 0, 400.0, 390.0, 20
    r.command, r.frame_id, r.stamp, r.size = "the mug", "cam_a", (1, 2), (4, 3)
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_latency_section_splits_end_to_end() -> None:
    records = [record(i) for i in range(3)] + [Record("/a", "lost", "x", sent=1.0)]
    sec = latency_section(records)
    assert sec["requests"] == 4 and sec["statuses"] == {"ok": 3, "missing": 1}
    assert sec["end_to_end"]["p50_ms"] == pytest.approx(600.0)
    assert sec["split_p50_ms"]["inference"] == 390.0
    assert sec["outside_node_ms"]["p50"] == pytest.approx(200.0)  # 600 - node total 400
    row = throughput_row(records, 4, wall_s=2.0)
    assert (row["answered"], row["throughput_rps"], row["in_flight"]) == (3, 1.5, 4)


def test_routing_errors_name_results_of_another_node() -> None:
    cam = Camera("/a", np.zeros((3, 4, 3), np.uint8), "cam_a", (1, 2), ["the mug"])
    assert routing_errors([record(0)], {"/a": cam}) == []
    wrong = record(1, frame_id="cam_b")
    missing = Record("/a", "x", "the mug", sent=0.0)
    errors = routing_errors([wrong, missing], {"/a": cam})
    assert len(errors) == 2 and "cam_b" in errors[0] and "no result" in errors[1]


def test_multi_node_section_compares_shared_answers_with_alone() -> None:
    cams = [
        Camera(f"/{n}", np.zeros((3, 4, 3), np.uint8), f"cam_{n}", (1, 2), ["the mug"])
        for n in "ab"
    ]

    def rec(ns: str, i: int, answer: tuple) -> Record:
        return record(i, ns, frame_id=f"cam_{ns[1]}", answer=answer)

    alone = [rec("/a", 0, ("x",)), rec("/b", 1, ("y",))]
    shared = [rec("/a", 2, ("x",)), rec("/b", 3, ("z",))]
    multi = multi_node_section(alone, shared, 2.0, cams, misrouted=0)
    assert multi["results_correct"] is True and multi["answers_identical_to_alone"] == "1/2"
    assert (multi["nodes"], multi["commands_per_node"]) == (2, 1)
    assert multi["shared_throughput_rps"] == 1.0
    assert set(multi["per_node_shared_p50_ms"]) == {"/a", "/b"}
    assert multi_node_section(alone, shared, 2.0, cams, misrouted=1)["results_correct"] is False


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.ml
def test_a_tiny_quick_run_writes_every_section(tmp_path: Path) -> None:
    pytest.importorskip("rclpy")
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    env = dict(os.environ, ROS_DOMAIN_ID=str(1 + os.getpid() % 100))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dev.bench",
            "--quick",
            "--skip-vllm",
            "--repeats",
            "1",
            "--requests",
            "2",
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(SECTIONS) <= set(report)
    assert report["end_to_end"]["embedded"]["statuses"].get("missing", 0) == 0
    assert [r["in_flight"] for r in report["concurrency"]["embedded"]] == [1, 4]
    assert report["memory"]["node_peak_rss_mb"] > 0
    assert report["multi_node"] == {"skipped": "--skip-vllm"}
    assert report["meta"]["model"]["weights"]  # trained, given, or random: said which
    assert "goals" in proc.stdout
