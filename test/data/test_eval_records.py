"""The authors' evaluation format: read, write, errors."""

from __future__ import annotations

import json

import pytest

from egm_ros.core.types import Box
from egm_ros.data.eval_records import read_records, synthetic_records, write_synthetic_set


def test_refcoco_style_and_amodal_records(tmp_path) -> None:
    (tmp_path / "a.jsonl").write_text(
        json.dumps(
            {
                "image": "img/1.jpg",
                "sent": "the man",
                "bbox": [10, 20, 30, 40],
                "width": 640,
                "height": 480,
                "ref_id": 7,
            }
        )
        + "\n\n"
        + json.dumps(
            {
                "image": "/abs/2.jpg",
                "sent": "the car",
                "bbox": [0, 0, 50, 50],
                "modal_bbox": [0, 10, 40, 50],
                "width": 100,
                "height": 80,
            }
        )
        + "\n"
    )
    first, second = read_records(tmp_path / "a.jsonl")
    assert first.image == str(tmp_path / "img/1.jpg") and first.amodal is None
    assert first.visible == Box(10, 20, 30, 40)
    assert second.image == "/abs/2.jpg"
    assert second.visible == Box(0, 10, 40, 50) and second.amodal == Box(0, 0, 50, 50)


def test_bad_line_names_its_number(tmp_path) -> None:
    (tmp_path / "b.jsonl").write_text(
        '{"image": "x", "sent": "s", "bbox": [1, 2, 3, 4], '
        '"width": 1, "height": 1}\n{"image": "y"}\n'
    )
    with pytest.raises(ValueError, match="b.jsonl:2"):
        read_records(tmp_path / "b.jsonl")


def test_synthetic_set_round_trips_through_files(tmp_path) -> None:
    path = write_synthetic_set(tmp_path, seed=3, n=5, amodal=True)
    records = read_records(path)
    memory = synthetic_records(3, 5, amodal=True)
    assert [r.sent for r in records] == [r.sent for r in memory]
    for rec, mem in zip(records, memory, strict=True):
        assert rec.amodal.as_list(3) == pytest.approx(mem.amodal.as_list(3), abs=0.01)
        assert rec.visible.as_list(3) == pytest.approx(mem.visible.as_list(3), abs=0.01)
        assert (tmp_path / rec.image).is_file()
