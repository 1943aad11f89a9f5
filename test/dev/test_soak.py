"""Short soaks in CI: the grounding node as a process, 640x480 frames of the synthetic scenes at
30 Hz. Against the scripted server process, 5 commands a second (a third of them malformed or
faulted); with the embedded model in the node (the default configuration), 2 a second: the
90-second version of the acceptance run ``make soak SOAK_SECONDS=600 SOAK_ARGS="--backend
embedded --command-hz 2"``. They check counts and memory, never times: every command gets
exactly one result, the malformed and faulted commands are part of the load, well-formed
commands are answered, and the node's RSS (its engine process included) after the warm-up
stays flat."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dev.soak import KINDS

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("soak")
    proc = subprocess.run(
        [sys.executable, "-m", "dev.soak", "--seconds", "30", "--warmup", "10"]
        + ["--progress", "0", "--out", str(out), "--json", str(out / "report.json")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert (out / "report.json").exists(), proc.stderr + proc.stdout
    data = json.loads((out / "report.json").read_text())
    data["_exit"], data["_stdout"] = proc.returncode, proc.stdout
    return data


def test_every_command_gets_exactly_one_result(report: dict) -> None:
    assert report["sent"] >= 50  # 30 s at 5 a second asked; a starved CPU sends fewer
    assert report["received"] == report["sent"]
    assert report["duplicates"] == 0 and report["unmatched"] == 0
    assert report["_exit"] == 0 and report["ok"], report["problems"]


def test_malformed_input_and_engine_faults_are_part_of_the_load(report: dict) -> None:
    kinds = report["by_kind"]
    for name, row in kinds.items():
        assert row["received"] == row["sent"], name
    malformed = sum(row["sent"] for row in kinds.values() if row["expected"] != "OK")
    assert malformed >= report["sent"] // 5
    # Each kind's own status is checked deterministically in test_scripted_server.py; here the
    # frames race the commands on a busy machine, so only the mix of outcomes is asserted.
    assert {"OK", "INVALID_INPUT", "NO_FRAME", "MALFORMED_OUTPUT", "ENGINE_ERROR"} <= set(
        report["by_status"]
    )


def test_memory_is_flat_and_the_queue_was_watched(report: dict) -> None:
    assert report["rss_mb"]["growth"] <= report["max_rss_growth_mb"]
    assert report["rss_mb"]["start"] > 0 and len(report["rss_timeline_mb"]) >= 10
    hwm = report["queue_high_water"]
    assert hwm is not None and 1 <= hwm <= report["queue_size"] + report["workers"]
    assert report["node_requests"] == report["received"]


def test_the_table_names_every_number(report: dict) -> None:
    text = report["_stdout"]
    for words in ("commands sent", "results received", "queue high-water", "node RSS", "p95"):
        assert words in text
    assert "(equal)" in text and "verdict: PASS" in text
    assert {k.name for k in KINDS} >= set(report["by_kind"])


@pytest.fixture(scope="module")
def embedded_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("soak_embedded")
    proc = subprocess.run(
        [sys.executable, "-m", "dev.soak", "--seconds", "90", "--backend", "embedded"]
        + ["--command-hz", "2", "--progress", "0", "--out", str(out)]
        + ["--json", str(out / "report.json")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert (out / "report.json").exists(), proc.stderr[-3000:] + proc.stdout[-3000:]
    data = json.loads((out / "report.json").read_text())
    data["_exit"], data["_stdout"] = proc.returncode, proc.stdout
    return data


@pytest.mark.ml
def test_the_embedded_model_under_a_camera_meets_the_acceptance_rules(embedded_report) -> None:
    """Issue 21: the default backend at 640x480 and 30 Hz with 2 commands a second."""
    report = embedded_report
    assert report["image_size"] == "640x480 rgb8" and report["image_hz"] == 30
    assert report["sent"] >= 60 and report["received"] == report["sent"]
    acceptance = report["acceptance"]
    assert acceptance["well_formed"] >= 40
    assert acceptance["answered"] >= 0.9 * acceptance["well_formed"], report["by_status"]
    assert acceptance["no_frame_without_stamp"] == 0
    assert report["rss_mb"]["growth"] <= 50.0
    # The scripted server's faults are not sent to a model; the malformed input is.
    kinds = report["by_kind"]
    assert not {"answer_garbage", "engine_hangs"} & set(kinds)
    assert {"ok", "ok_amodal", "ok_string"} <= set(kinds)
    assert sum(row["ok"] for row in kinds.values() if row["well_formed"]) > 0
    assert report["_exit"] == 0 and report["ok"], report["problems"]
