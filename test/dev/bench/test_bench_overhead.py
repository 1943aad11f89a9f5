"""The overhead benchmark's copy counter and row shape on small frames (fast): the path it
times is the node's own (a compressed frame within max_pixels is not decoded)."""

from __future__ import annotations

import numpy as np
import pytest

from dev.bench import overhead
from egm_ros.core.compressed import DecodedImage

pytest.importorskip("rclpy")


def test_rows_for_each_input_kind_with_copies_by_stage() -> None:
    section = overhead.run(1, {"160x120": (160, 120)})
    rows = section["rows"]
    assert [r["input"] for r in rows] == [
        "raw",
        "compressed",
        "compressed, max_pixels 0",
        "compressed, server_max_pixels",
    ]
    for r in rows:
        assert r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"]
        stages = r["copies_by_stage"]
        assert set(stages) == {"decode", "resize", "encode", "result", "total"}
        assert (
            stages["total"]
            == r["full_frame_copies"]
            == sum(v for k, v in stages.items() if k != "total")
        )
    assert rows[0]["copies_by_stage"]["decode"] == 0  # rgb8 is a view on the message buffer
    assert rows[1]["copies_by_stage"]["decode"] == 0  # within max_pixels: the JPEG goes as is


def test_a_compressed_frame_over_max_pixels_is_decoded_and_one_within_is_not() -> None:
    rows = overhead.run(1, {"1600x1200": (1600, 1200)})["rows"]
    by_input = {r["input"]: r["copies_by_stage"] for r in rows}
    assert by_input["compressed"]["decode"] >= 1  # 1,920,000 pixels: decoded to resize
    assert by_input["compressed, max_pixels 0"]["decode"] == 0  # never resized: not decoded
    assert by_input["compressed, server_max_pixels"]["decode"] == 0  # the server resizes


def test_copy_counter_sees_a_copy_and_not_a_view() -> None:
    from egm_ros.node.conversions import FrameInput

    rgb = np.zeros((120, 160, 3), np.uint8)
    grounder = overhead.server_grounder(0)

    def path(decode):
        def frame():
            return FrameInput(DecodedImage(decode(), (160, 120)), None, (160, 120))

        return overhead.NodePath(frame, lambda o, w, h: None, grounder)

    view = overhead.count_full_frame_copies(path(lambda: rgb[:, :, :]), rgb.nbytes)
    twice = overhead.count_full_frame_copies(path(lambda: rgb.copy() + 0), rgb.nbytes)
    grounder.engine.close()
    assert view["decode"] == 0
    assert twice["decode"] == 2
