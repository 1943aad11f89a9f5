"""The authors' evaluation format: read, write, round trip, and errors that name the line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from egm_ros.core.types import Box
from egm_ros.data.eval_records import read_records, synthetic_records, write_synthetic_set

GOOD = {"image": "x.png", "sent": "s", "bbox": [1, 2, 3, 4], "width": 10, "height": 10}


def test_refcoco_style_and_amodal_records(tmp_path) -> None:
    refcoco = {
        "image": "img/1.jpg",
        "sent": "the man",
        "bbox": [10, 20, 30, 40],
        "width": 640,
        "height": 480,
        "ref_id": 7,
        "sent_id": [1, 2],
    }
    amodal = {
        "image": "/abs/2.jpg",
        "sent": "the car",
        "bbox": [0, 0, 50, 50],
        "modal_bbox": [0, 10, 40, 50],
        "width": 100,
        "height": 80,
    }
    (tmp_path / "a.jsonl").write_text(json.dumps(refcoco) + "\n\n" + json.dumps(amodal) + "\n")
    first, second = read_records(tmp_path / "a.jsonl")
    assert first.image == str(tmp_path / "img/1.jpg") and first.amodal is None
    assert first.visible == Box(10, 20, 30, 40) and (first.width, first.height) == (640, 480)
    assert first.sent == "the man" and first.expr_type == ""
    assert second.image == "/abs/2.jpg"
    assert second.visible == Box(0, 10, 40, 50) and second.amodal == Box(0, 0, 50, 50)


def test_image_root_and_a_record_with_only_modal_bbox(tmp_path) -> None:
    """The authors join ``image`` (leading / removed) to BASE_IMG_DIR, and score a record
    without ``bbox`` on its ``modal_bbox``."""
    only_modal = {**GOOD, "image": "/data/coco/1.jpg", "modal_bbox": [5, 5, 9, 9]}
    del only_modal["bbox"]
    (tmp_path / "c.jsonl").write_text(json.dumps(GOOD) + "\n" + json.dumps(only_modal) + "\n")
    first, second = read_records(tmp_path / "c.jsonl", image_root=tmp_path / "EGM")
    assert first.image == str(tmp_path / "EGM" / "x.png")
    assert second.image == str(tmp_path / "EGM" / "data/coco/1.jpg")
    assert second.visible == Box(5, 5, 9, 9) and second.amodal is None
    assert read_records(tmp_path / "c.jsonl")[0].image == str(tmp_path / "x.png")


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"image": "y"', "bad record"),
        ('{"image": "y"}', "missing sent, bbox, width, height"),
        (json.dumps({**GOOD, "bbox": [1, 2, 3]}), r"expected \[x1, y1, x2, y2\]"),
        (json.dumps({**GOOD, "bbox": ["a", 2, 3, 4]}), "could not convert"),
        (json.dumps({**GOOD, "width": 0}), "bad image size"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_line_names_its_file_and_number(tmp_path, bad_line: str, reason: str) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + bad_line + "\n")
    with pytest.raises(ValueError, match=f"b.jsonl:3: .*{reason}"):
        read_records(path)


def test_synthetic_records_are_held_out_deterministic_and_typed() -> None:
    records = synthetic_records(7, 6, amodal=True)
    again = synthetic_records(7, 6, amodal=True)
    assert len(records) == 6
    assert [(r.sent, r.visible, r.amodal) for r in records] == [
        (r.sent, r.visible, r.amodal) for r in again
    ]
    for rec in records:
        assert rec.amodal is not None and rec.rgb.shape == (224, 224, 3)
        assert rec.expr_type in {"attribute", "ordinal", "relative", "occlusion"}
    assert all(r.amodal is None for r in synthetic_records(7, 3, amodal=False))


@pytest.mark.parametrize("amodal", [False, True])
def test_synthetic_set_round_trips_through_files(tmp_path, amodal: bool) -> None:
    path = write_synthetic_set(tmp_path / "set", seed=3, n=4, amodal=amodal)
    assert path.parent == tmp_path / "set"
    records = read_records(path)
    memory = synthetic_records(3, 4, amodal=amodal)
    assert [(r.sent, r.expr_type) for r in records] == [(r.sent, r.expr_type) for r in memory]
    for rec, mem in zip(records, memory, strict=True):
        assert rec.visible == mem.visible and rec.amodal == mem.amodal  # integer pixel boxes
        assert (rec.width, rec.height) == (224, 224)
        assert np.array_equal(np.asarray(Image.open(rec.image).convert("RGB")), mem.rgb)
