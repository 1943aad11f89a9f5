"""`egm-eval --protocol authors` against a scripted OpenAI-compatible server: one small records
file through both protocols, the authors' numbers worked out by hand from their script's rules
(first "bbox_2d" anywhere, then the first [a, b, c, d], then the last four numbers; 0..1000
clamped, scaled, rounded half to even, clamped to width-1/height-1, zero width widened; IoU >
0.5; failures 0; amodal records scored on `bbox`, records without `bbox` on `modal_bbox`).
Both protocols send the authors' prompt text and the image files' own bytes."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from openai_server import ScriptedOpenAIServer
from PIL import Image

from egm_ros.cli.eval import main

LOCATE = re.compile(r"^Locate (.*?)( amodally)?, output its bbox coordinates using JSON format$")

#: sentence -> (visible reply, amodal reply); all from a thinking model.
REPLIES = {
    # bbox_2d in the reasoning (the authors take it) and another in the answer (the project's).
    "the left mug": 'At {"bbox_2d": [100, 100, 500, 600]}, I think.</think>\n'
    '```json\n[{"bbox_2d": [600, 600, 900, 900]}]\n```',
    # A bare list: 502.5 -> 100.5 px rounds to 100 (half to even), 497.5 -> 49.75 -> 50.
    "the bowl": "Looking.</think>\nThe bowl is at [0, 0, 502.5, 497.5]",
    # Prose with four numbers: the authors' last-four fallback; the project refuses prose.
    "the cup": "Hm.</think>\nthe cup spans 100 100 then 500 and 500",
    # No numbers at all: 0 under both.
    "the plate": "No idea.</think>\nI cannot find it.",
    # 50.2 and 50.4 px both round to 50: the authors widen to 50..51.
    "the pen": '</think>\n```json\n[{"bbox_2d": [251, 200, 252, 800]}]\n```',
    # Only modal_bbox in the record: scored on it. 1000 -> width-1.
    "the spoon": '</think>\n```json\n[{"bbox_2d": [500, 500, 1000, 1000]}]\n```',
}
AMODAL = {
    "the hidden box": (
        '</think>\n```json\n[{"bbox_2d": [500, 500, 750, 833]}]\n```',
        '</think>\n```json\n[{"bbox_2d": [500, 500, 1000, 1000]}]\n```',
    )
}


def reply(body: dict) -> str:
    text = body["messages"][0]["content"][-1]["text"]
    sent, amodal = LOCATE.match(text).groups()
    if sent in AMODAL:
        return AMODAL[sent][1 if amodal else 0]
    assert not amodal, text
    return REPLIES[sent]


def image_bytes(width: int, height: int, fmt: str) -> bytes:
    rng = np.random.default_rng(width)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def records_file(tmp_path: Path) -> Path:
    root = tmp_path / "EGM"
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.png").write_bytes(image_bytes(200, 100, "PNG"))
    (root / "data" / "b.jpg").write_bytes(image_bytes(400, 300, "JPEG"))
    a = {"image": "/data/a.png", "width": 200, "height": 100}  # leading / as in theirs
    b = {"image": "data/b.jpg", "width": 400, "height": 300}
    rows = [
        {**a, "sent": "the left mug", "bbox": [20, 10, 100, 60]},
        {**a, "sent": "the bowl", "bbox": [0, 0, 100, 50]},
        {**b, "sent": "the cup", "bbox": [40, 30, 200, 150]},
        {**b, "sent": "the plate", "bbox": [0, 0, 400, 300]},
        {**b, "sent": "the hidden box", "bbox": [200, 150, 399, 299],
         "modal_bbox": [200, 150, 300, 250]},
        {**a, "sent": "the pen", "bbox": [50, 20, 51, 80]},
        {**a, "sent": "the spoon", "modal_bbox": [100, 50, 200, 100]},
    ]  # fmt: skip
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(capsys, server, path: Path, *args: str) -> dict:
    argv = ["--backend", "openai", "--base-url", server.base_url, "--data", str(path)]
    root = str(path.parent / "EGM")
    code = main([*argv, "--image-root", root, "--family", "qwen3_vl", "--json", *args])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def sent_images(server) -> list[bytes]:
    urls = [b["messages"][0]["content"][0]["image_url"]["url"] for b in server.requests]
    return [base64.b64decode(u.split(",", 1)[1]) for u in urls]


def test_both_protocols_on_one_file(records_file: Path, capsys) -> None:
    files = {p.read_bytes() for p in (records_file.parent / "EGM" / "data").iterdir()}
    with ScriptedOpenAIServer(reply=reply, model="egm") as server:
        authors = run(capsys, server, records_file, "--protocol", "authors")
        authors_requests = len(server.requests)
        assert set(sent_images(server)) == files  # each file's own bytes, not re-encoded
        project = run(capsys, server, records_file)
        assert set(sent_images(server)) == files
        texts = {b["messages"][0]["content"][-1]["text"] for b in server.requests}

    assert authors_requests == 7  # one query per record; the project asks 2 for the amodal one
    assert len(server.requests) == 7 + 8
    assert "Locate the hidden box amodally, output its bbox coordinates using JSON format" in texts
    assert "Locate the bowl, output its bbox coordinates using JSON format" in texts

    # By hand. Visible records: mug [20,10,100,60] = truth: 1; bowl [0,0,100,50]: 1; cup (last
    # four numbers -> [40,30,200,150]): 1; plate: no box, 0; pen [50,20,51,80]: 1; spoon
    # [100,50,199,99] against [100,50,200,100]: 99*49 / (100*50) = 0.9702.
    assert authors["protocol"] == "authors" and authors["n"] == 7
    assert authors["mean_iou"] == round((4 + 4851 / 5000) / 6, 4) == 0.8284
    assert authors["visible_acc50"] == round(5 / 6, 4)
    # The amodal record's amodal query: [200,150,400,300] clamped to [200,150,399,299] = bbox.
    assert authors["amodal_mean_iou"] == 1.0 and authors["amodal_acc50"] == 1.0
    assert authors["statuses"] == {"ok": 6, "malformed_output": 1}

    # The project's grounder reads only the answer after </think>, in float pixels: mug
    # [120,60,180,90]: 0; bowl [0,0,100.5,49.75]: 4975 / 5024.875; cup: prose, 0; plate: 0;
    # hidden box (visible, modal truth) [200,150,300,249.9]: 0.999; pen [50.2,20,50.4,80]:
    # 12 / 60; spoon [100,50,200,100]: 1. Amodal [200,150,400,300] vs [200,150,399,299].
    visible = [0, 4975 / 5024.875, 0, 0, 0.999, 0.2, 1.0]
    assert project["protocol"] == "project" and project["n"] == 7
    assert project["mean_iou"] == pytest.approx(sum(visible) / 7, abs=1e-4)
    assert project["visible_acc50"] == round(3 / 7, 4)
    assert project["amodal_mean_iou"] == pytest.approx(199 * 149 / (200 * 150), abs=1e-4)
    assert project["statuses"]["ok"] == 5


def test_internvl_prompts_character_for_character(records_file: Path, capsys) -> None:
    prompts = []

    def intern_reply(body: dict) -> str:
        prompts.append(body["messages"][0]["content"][-1]["text"])
        return "</think><ref>x</ref><box>[[100, 100, 500, 600]]</box>"

    with ScriptedOpenAIServer(reply=intern_reply, model="egm-internvl") as server:
        out = run(capsys, server, records_file, "--protocol", "authors", "--family", "internvl3")
    assert prompts[0] == (  # the trailing space is theirs
        "Please provide the bounding box coordinate of the region this sentence describes: "
        "<ref>the left mug</ref> "
    )
    assert (
        "Please provide the amodal bounding box coordinate of the region this sentence "
        "describes: <ref>the hidden box</ref>"
    ) in prompts
    assert out["statuses"] == {"ok": 7}


def test_a_size_mismatch_is_invalid_input_and_scores_zero(records_file: Path, capsys) -> None:
    rows = [json.loads(line) for line in records_file.read_text().splitlines()]
    rows[0]["width"] = 201
    records_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with ScriptedOpenAIServer(reply=reply, model="egm") as server:
        out = run(capsys, server, records_file, "--protocol", "authors", "--n", "2")
        assert len(server.requests) == 1
    assert out["statuses"] == {"invalid_input": 1, "ok": 1} and out["mean_iou"] == 0.5
