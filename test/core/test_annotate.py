"""Drawing: visible box solid, amodal box dashed, caption band."""

from __future__ import annotations

import numpy as np

from egm_ros.core.annotate import AMODAL_COLOUR, VISIBLE_COLOUR, draw_result, save_png
from egm_ros.core.types import Box, GroundedObject


def _is(pixel, colour) -> bool:
    return tuple(int(v) for v in pixel) == colour


def test_visible_solid_amodal_dashed_and_caption(tmp_path) -> None:
    rgb = np.full((300, 400, 3), 128, np.uint8)
    obj = GroundedObject(
        visible=Box(50, 100, 150, 200),
        amodal=Box(250, 100, 350, 290),
        amodal_predicted=True,
        label="mug",
    )
    out = draw_result(rgb, [obj], caption="the mug behind the laptop")
    assert out.shape == rgb.shape and not np.shares_memory(out, rgb)
    left_edge = out[110:190, 50]
    assert all(_is(p, VISIBLE_COLOUR) for p in left_edge)  # solid
    amodal_edge = out[110:280, 250]
    hits = [_is(p, AMODAL_COLOUR) for p in amodal_edge]
    assert any(hits) and not all(hits)  # dashed: colour with gaps
    assert (out[2:8, :200] < 60).mean() > 0.5  # dark caption band
    assert (out[2:8, :200] > 200).any()  # with text in it
    assert save_png(out, tmp_path / "a" / "b.png").is_file()


def test_amodal_box_past_the_border_and_no_objects() -> None:
    rgb = np.zeros((50, 50, 3), np.uint8)
    obj = GroundedObject(visible=None, amodal=Box(-20, 10, 40, 80), amodal_predicted=True)
    out = draw_result(rgb, [obj])
    assert any(_is(p, AMODAL_COLOUR) for p in out[10])
    assert np.array_equal(draw_result(rgb, []), rgb)
