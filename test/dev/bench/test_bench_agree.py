"""Whether consecutive bench runs agree (dev/bench/agree.py), on made-up reports."""

from __future__ import annotations

import json
from pathlib import Path

from dev.bench import agree


def report(embedded: float, openai: float | None = 2.8, outside: float = 7.0) -> dict:
    def rows(x4: float | None) -> list[dict]:
        return [{"in_flight": 1, "x_of_1_in_flight": 1.0}, {"in_flight": 4, "x_of_1_in_flight": x4}]

    e2e = {"end_to_end": {"n": 20}, "outside_node_ms": {"p50": 2.0, "p95": outside}}
    return {
        "concurrency": {"embedded": rows(embedded), "openai_vllm": rows(openai)},
        "end_to_end": {"embedded": e2e, "openai_vllm": {"skipped": "--skip-vllm"}},
    }


def test_runs_within_20_percent_of_their_mean_agree() -> None:
    results = agree.checks([report(2.2), report(2.5), report(2.4)])
    assert all(ok for _, _, ok in results)
    assert [what.split(",")[1].strip() for what, _, _ in results] == [
        "embedded",
        "embedded",
        "openai_vllm",
        "embedded",
    ]  # ratio spread and floor for embedded, spread for openai, outside p95 (not the skipped)


def test_a_spread_a_low_ratio_or_a_slow_round_trip_is_named() -> None:
    spread = agree.checks([report(0.87), report(1.56), report(4.48)])
    assert [ok for _, _, ok in spread][:2] == [False, False]
    assert "0.87, 1.56, 4.48" in spread[0][1]
    low = agree.checks([report(1.9), report(1.9), report(1.9)])
    assert [ok for what, _, ok in low if ">= 2x" in what] == [False]
    slow = agree.checks([report(2.2), report(2.2, outside=16.0)])
    assert [ok for what, _, ok in slow if "outside" in what] == [False]
    missing = agree.checks([report(2.2), report(2.2, openai=None)])
    assert [ok for what, _, ok in missing if "openai_vllm" in what] == [False]


def test_main_reads_the_newest_runs_and_says_whether_they_agree(tmp_path: Path, capsys) -> None:
    for i, x in enumerate((9.0, 2.2, 2.4, 2.3)):  # the first is older than the three read
        (tmp_path / f"bench-2026-01-0{i + 1}.json").write_text(json.dumps(report(x)))
    assert [p.name for p in agree.newest(tmp_path)][0] == "bench-2026-01-02.json"
    files = [str(p) for p in agree.newest(tmp_path)]
    assert agree.main(files) == 0
    assert "3 runs agree" in capsys.readouterr().out
    assert agree.main([str(tmp_path / "bench-2026-01-01.json"), *files]) == 1
    assert agree.main(files[:1]) == 2
