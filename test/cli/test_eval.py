"""`egm-eval` end to end: an OpenAI-compatible server that answers with the ground truth scores
1.0, one that answers a wrong box scores 0, and the JSON keys are the documented ones."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from openai_server import ScriptedOpenAIServer

from egm_ros.data.eval_records import synthetic_records
from egm_ros.data.expressions import relative_box

EXE = shutil.which("egm-eval", path=str(Path(sys.executable).parent))
KEYS = {
    "visible_acc50",
    "amodal_acc50",
    "mean_iou",
    "amodal_mean_iou",
    "latency_ms_p50",
    "latency_ms_p95",
    "tokens_mean",
}


def truth_reply(records):
    truth = {}
    for rec in records:
        for amodal, box in ((False, rec.visible), (True, rec.amodal)):
            if box is not None:
                truth[(rec.sent, amodal)] = relative_box(box, rec.width, rec.height)

    def reply(body: dict) -> str:
        text = body["messages"][0]["content"][1]["text"]
        sent = re.search(r"<ref>(.*)</ref>", text).group(1)
        box = truth[(sent, "amodal" in text)]
        return f'ok</think>```json\n[{{"bbox_2d": {box}}}]\n```'

    return reply


def run(server, *args: str) -> dict:
    proc = subprocess.run(
        [EXE, "--backend", "openai", "--base-url", server.base_url, "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_ground_truth_answers_score_one() -> None:
    records = synthetic_records(0, 12, amodal=True)
    assert len({r.sent for r in records}) == len(records)
    with ScriptedOpenAIServer(reply=truth_reply(records), model="truth") as server:
        out = run(
            server, "--synthetic", "--seed", "0", "--n", "12", "--amodal", "--concurrency", "4"
        )
    assert KEYS <= set(out)
    assert out["visible_acc50"] == out["amodal_acc50"] == 1.0
    assert out["mean_iou"] > 0.97 and out["amodal_mean_iou"] > 0.97
    assert out["n"] == 12 and out["statuses"] == {"ok": 12}


def test_wrong_answers_score_zero_and_visible_only_has_no_amodal() -> None:
    reply = 'x</think>```json\n[{"bbox_2d": [0, 0, 10, 10]}]\n```'
    with ScriptedOpenAIServer(reply=lambda body: reply, model="wrong") as server:
        out = run(server, "--synthetic", "--n", "5")
    assert out["visible_acc50"] == 0.0 and out["amodal_acc50"] is None


def test_data_file_input(tmp_path) -> None:
    from egm_ros.data.eval_records import write_synthetic_set

    path = write_synthetic_set(tmp_path, seed=50, n=4, amodal=False)
    records = synthetic_records(50, 4, amodal=False)
    with ScriptedOpenAIServer(reply=truth_reply(records), model="truth") as server:
        out = run(server, "--data", str(path))
    assert out["visible_acc50"] == 1.0 and out["n"] == 4
