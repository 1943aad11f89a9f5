"""The overhead benchmark's copy counter and row shape on small frames (fast)."""

from __future__ import annotations

import numpy as np

from dev.bench import overhead
from egm_ros.core.compressed import DecodedImage


def test_rows_for_each_input_kind_with_copies_by_stage() -> None:
    section = overhead.run(1, {"160x120": (160, 120)})
    rows = section["rows"]
    assert [r["input"] for r in rows] == ["raw", "compressed"]
    for r in rows:
        assert r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"]
        stages = r["copies_by_stage"]
        assert set(stages) == {"decode", "resize", "encode", "result", "total"}
        assert (
            stages["total"]
            == r["full_frame_copies"]
            == sum(v for k, v in stages.items() if k != "total")
        )
    raw, compressed = rows
    assert raw["copies_by_stage"]["decode"] == 0  # rgb8 is a view on the message buffer
    assert compressed["copies_by_stage"]["decode"] >= 1  # decoding writes a frame


def test_copy_counter_sees_a_copy_and_not_a_view() -> None:
    rgb = np.zeros((120, 160, 3), np.uint8)

    def path(decode):
        return overhead.NodePath(lambda: DecodedImage(decode(), (160, 120)), lambda o, w, h: None)

    view = overhead.count_full_frame_copies(path(lambda: rgb[:, :, :]), rgb.nbytes)
    twice = overhead.count_full_frame_copies(path(lambda: rgb.copy() + 0), rgb.nbytes)
    assert view["decode"] == 0
    assert twice["decode"] == 2
