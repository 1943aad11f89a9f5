"""The side-by-side benchmark's two clients against the scripted OpenAI-compatible server (a real
HTTP server with scripted answers, no model): what each sends, how the boxes are compared and
how the section is summarised. No time is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from dev.bench.side_by_side import (
    PLAIN_AMODAL,
    PLAIN_VISIBLE,
    Answer,
    PlainClient,
    Query,
    run,
    scene_queries,
    summarise,
)
from dev.scripted_server import ScriptedOpenAIServer
from egm_ros.core.prompts import QWEN_AMODAL, QWEN_VISIBLE

VISIBLE = 'The mug.</think>\n```json\n[{"bbox_2d": [100, 200, 300, 400], "label": "mug"}]\n```'
AMODAL = 'The mug.</think>\n```json\n[{"bbox_2d": [100, 200, 300, 600], "label": "mug"}]\n```'


def scripted(body: dict) -> str:
    text = body["messages"][0]["content"][1]["text"]
    return AMODAL if "amodally" in text else VISIBLE


def picture(folder: Path, name: str = "scene.png") -> Path:
    path = folder / name
    Image.fromarray(np.full((100, 200, 3), 90, np.uint8)).save(path)
    return path


def test_the_plain_client_uses_the_egm_prompts_word_for_word() -> None:
    assert PLAIN_VISIBLE.format("the mug") == QWEN_VISIBLE.replace("{sent}", "the mug")
    assert PLAIN_AMODAL.format("the mug") == QWEN_AMODAL.replace("{sent}", "the mug")


def test_the_plain_client_asks_twice_without_streaming(tmp_path: Path) -> None:
    data = picture(tmp_path).read_bytes()
    with ScriptedOpenAIServer(reply=scripted, model="egm-bench") as server:
        client = PlainClient(server.base_url, "egm-bench", max_tokens=32)
        visible, amodal, tokens = client.ground(Query(tmp_path / "scene.png", "the mug"), data)
        client.close()
        bodies = list(server.requests)
    assert (visible, amodal) == (VISIBLE, AMODAL)
    assert tokens > 0
    assert [b.get("stream", False) for b in bodies] == [False, False]
    assert [b["messages"][0]["content"][1]["text"] for b in bodies] == [
        PLAIN_VISIBLE.format("the mug"),
        PLAIN_AMODAL.format("the mug"),
    ]
    assert all(b["max_tokens"] == 32 and b["temperature"] == 0.0 for b in bodies)
    url = bodies[0]["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")


def test_both_clients_on_one_server_get_the_same_boxes(tmp_path: Path) -> None:
    queries = [Query(picture(tmp_path), "the mug"), Query(picture(tmp_path, "b.png"), "the cup")]
    with ScriptedOpenAIServer(reply=scripted, model="egm-bench") as server:
        section = run(server.base_url, "egm-bench", queries, max_tokens=200)
        bodies = list(server.requests)
    assert section["answers_identical"] is True
    assert section["identical_answers"] == "4/4"  # 2 queries at 1 and at 4 in flight
    assert [r["in_flight"] for r in section["plain_client"]] == [1, 4]
    assert [r["in_flight"] for r in section["egm_ros"]] == [1, 4]
    assert all(r["requests"] == 2 for r in section["plain_client"] + section["egm_ros"])
    ratios = section["amodal_latency_ratio_p50_by_in_flight"]
    assert section["amodal_latency_ratio_p50"] == ratios[1]
    # warm-up (2 queries) + 2 at 1 in flight + 2 at 4: two chat requests per amodal command
    streamed = [b for b in bodies if b.get("stream")]
    assert len(bodies) == 24 and len(streamed) == 12
    # both send the file's own bytes
    urls = {b["messages"][0]["content"][0]["image_url"]["url"] for b in bodies}
    assert all(u.startswith("data:image/png;base64,") for u in urls)
    json.dumps(section)  # the section goes into bench.json as it is


def test_different_boxes_are_reported_as_not_identical() -> None:
    plain = [Answer(((1.0, 2.0, 3.0, 4.0),), (), 10, 200.0)] * 2
    egm = [plain[0], Answer(((1.0, 2.0, 3.0, 5.0),), (), 10, 100.0)]
    rows_p = [{"in_flight": 1, "p50_ms": 200.0}]
    rows_e = [{"in_flight": 1, "p50_ms": 110.0}]
    section = summarise(rows_p, rows_e, plain, egm)
    assert section["answers_identical"] is False and section["identical_answers"] == "1/2"
    assert section["amodal_latency_ratio_p50"] == 0.55


def test_scene_queries_are_pictures_on_disk_with_expressions(tmp_path: Path) -> None:
    queries = scene_queries(tmp_path, 6, per_scene=4)
    assert len(queries) == 6 and len({q.image for q in queries}) == 2
    assert all(q.image.is_file() and q.expression for q in queries)
    with Image.open(queries[0].image) as img:
        assert img.format == "PNG"
