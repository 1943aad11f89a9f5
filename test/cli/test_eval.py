"""`egm-eval` end to end against a scripted OpenAI-compatible server: ground-truth answers
score 1.0, wrong or failed ones 0, and the JSON keys are the documented ones. The metric code
is also checked directly on hand-made outcomes."""

from __future__ import annotations

import json
import re

import pytest
from openai_server import ScriptedOpenAIServer

from egm_ros.cli.eval import main, score
from egm_ros.core.types import Box, GroundedObject, GroundingOutcome, Latency, Status
from egm_ros.data.eval_records import EvalRecord, synthetic_records, write_synthetic_set
from egm_ros.data.expressions import relative_box

KEYS = {
    "visible_acc50",
    "amodal_acc50",
    "mean_iou",
    "amodal_mean_iou",
    "latency_ms_p50",
    "latency_ms_p95",
    "tokens_mean",
    "n",
    "statuses",
}


def truth_reply(records: list[EvalRecord]):
    """A server reply that answers each asked expression with its ground-truth box."""
    truth = {}
    for rec in records:
        truth[(rec.sent, False)] = relative_box(rec.visible, rec.width, rec.height)
        if rec.amodal is not None:
            truth[(rec.sent, True)] = relative_box(rec.amodal, rec.width, rec.height)

    def reply(body: dict) -> str:
        text = body["messages"][0]["content"][-1]["text"]
        sent = re.search(r"<ref>(.*)</ref>|^Locate (.*?)(?: amodally)?, output", text)
        sent = sent.group(1) or sent.group(2)
        box = truth[(sent, "amodal" in text)]
        return f'Found it.</think>\n```json\n[{{"bbox_2d": {box}, "label": "x"}}]\n```'

    return reply


def run(capsys, server: ScriptedOpenAIServer, *args: str) -> tuple[int, dict]:
    code = main(
        ["--backend", "openai", "--base-url", server.base_url, "--family", "qwen3_vl", *args]
    )
    return code, json.loads(capsys.readouterr().out)


def test_ground_truth_answers_score_one(capsys) -> None:
    records = synthetic_records(0, 8, amodal=True)
    with ScriptedOpenAIServer(reply=truth_reply(records), model="truth") as server:
        code, out = run(
            capsys, server, "--synthetic", "--n", "8", "--amodal", "--concurrency", "3", "--json"
        )
        assert len(server.requests) == 16  # a visible and an amodal query per record
    assert code == 0 and KEYS <= set(out)
    assert out["visible_acc50"] == out["amodal_acc50"] == 1.0
    assert out["mean_iou"] > 0.97 and out["amodal_mean_iou"] > 0.97
    assert out["n"] == 8 and out["statuses"] == {"ok": 8}
    assert out["tokens_mean"] > 0 and out["latency_ms_p95"] >= out["latency_ms_p50"] > 0
    assert out["model"] == "truth" and out["backend"] == "openai"


def test_wrong_answers_score_zero_and_a_visible_set_has_no_amodal_score(capsys) -> None:
    reply = 'x</think>\n```json\n[{"bbox_2d": [0, 0, 10, 10]}]\n```'
    with ScriptedOpenAIServer(reply=lambda body: reply, model="wrong") as server:
        code, out = run(capsys, server, "--synthetic", "--seed", "5", "--n", "4", "--json")
    assert code == 0
    assert out["visible_acc50"] == 0.0 and out["mean_iou"] < 0.05
    assert out["amodal_acc50"] is None and out["amodal_mean_iou"] is None


def test_failed_requests_count_as_zero(capsys) -> None:
    with ScriptedOpenAIServer(model="broken") as server:
        server.fail_status = 400
        code, out = run(capsys, server, "--synthetic", "--n", "3", "--json")
    assert code == 0
    assert out["visible_acc50"] == 0.0 and out["mean_iou"] == 0.0
    assert sum(out["statuses"].values()) == 3 and "ok" not in out["statuses"]


def test_data_file_input_and_text_summary(tmp_path, capsys) -> None:
    path = write_synthetic_set(tmp_path, seed=50, n=3, amodal=True)
    records = synthetic_records(50, 3, amodal=True)
    with ScriptedOpenAIServer(reply=truth_reply(records), model="truth") as server:
        code = main(["--backend", "openai", "--base-url", server.base_url, "--data", str(path)])
    text = capsys.readouterr().out
    assert code == 0
    assert "visible: mean IoU" in text and "Acc@0.5 1.0" in text and "amodal:" in text
    assert "statuses: ok 3" in text


def test_bad_data_file_is_an_input_error(tmp_path, capsys) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"image": "a.png"}\n')
    assert main(["--data", str(path)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "missing.jsonl")]) == 2


def test_unreachable_server_is_engine_unavailable(capsys) -> None:
    with ScriptedOpenAIServer() as server:
        url = server.base_url  # the port is closed once the server stops
    code = main(
        [
            "--backend",
            "openai",
            "--base-url",
            url,
            "--synthetic",
            "--n",
            "2",
            "--json",
            "--timeout",
            "5",
        ]
    )
    assert code == 3
    assert "unavailable" in capsys.readouterr().err


def _outcome(status: Status, visible=None, amodal=None, ms: float = 10.0, tokens: int = 5):
    objects = [GroundedObject(visible=visible, amodal=amodal)] if visible or amodal else []
    return GroundingOutcome(
        status=status, objects=objects, tokens=tokens, latency=Latency(total_ms=ms)
    )


def test_score_counts_failures_as_zero_and_splits_by_expression_type() -> None:
    truth = Box(0, 0, 10, 10)
    records = [
        EvalRecord("", "a", truth, Box(0, 0, 10, 20), 100, 100, expr_type="ordinal"),
        EvalRecord("", "b", truth, Box(0, 0, 10, 20), 100, 100, expr_type="ordinal"),
        EvalRecord("", "c", truth, Box(0, 0, 10, 20), 100, 100, expr_type="attribute"),
        EvalRecord("", "d", truth, Box(0, 0, 10, 20), 100, 100, expr_type="attribute"),
    ]
    outcomes = [
        _outcome(Status.OK, truth, Box(0, 0, 10, 20), ms=10),
        _outcome(Status.OK, Box(0, 0, 10, 5), Box(0, 0, 10, 10), ms=20),  # IoU 0.5: not > 0.5
        _outcome(Status.TIMEOUT, ms=30, tokens=0),
        # The model's box came back, but the status says the request failed: still 0.
        _outcome(Status.MALFORMED_OUTPUT, truth, ms=40, tokens=0),
    ]
    out = score(records, outcomes)
    assert out["visible_acc50"] == 0.25 and out["mean_iou"] == pytest.approx((1 + 0.5) / 4)
    assert out["amodal_acc50"] == 0.25 and out["amodal_mean_iou"] == pytest.approx(1.5 / 4)
    assert out["latency_ms_p50"] == 25.0 and out["latency_ms_p95"] == pytest.approx(38.5)
    assert out["tokens_mean"] == 2.5
    assert out["statuses"] == {"ok": 2, "timeout": 1, "malformed_output": 1}
    assert out["visible_acc50_by_type"] == {"attribute": 0.0, "ordinal": 0.5}
    assert out["amodal_acc50_by_type"] == {"attribute": 0.0, "ordinal": 0.5}
    assert out["n_by_type"] == {"attribute": 2, "ordinal": 2}


def test_synthetic_scenes_at_another_camera_size(capsys) -> None:
    records = synthetic_records(0, 3, amodal=True, size=(640, 480))
    assert {(r.width, r.height) for r in records} == {(640, 480)}
    assert all(r.rgb.shape == (480, 640, 3) for r in records)
    assert all(0 <= r.amodal.x1 and r.amodal.x2 <= 640 for r in records)
    assert main(["--synthetic", "--width", "640", "--n", "1"]) == 2
    assert "--width and --height go together" in capsys.readouterr().err
