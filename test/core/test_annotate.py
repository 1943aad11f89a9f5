"""Drawing: visible box solid, amodal box dashed, distinct colours, caption band, clipping."""

from __future__ import annotations

import numpy as np
from PIL import Image

from egm_ros.core.annotate import (
    AMODAL_COLOUR,
    CAPTION_BG,
    PALETTE,
    VISIBLE_COLOUR,
    draw_result,
    save_png,
)
from egm_ros.core.types import Box, GroundedObject

GREY = np.full((300, 400, 3), 128, np.uint8)


def _is(pixel, colour) -> bool:
    return tuple(int(v) for v in pixel) == colour


def _hits(pixels, colour) -> list[bool]:
    return [_is(p, colour) for p in pixels]


def _band_height(out: np.ndarray) -> int:
    """Rows from the top whose first column is the caption background."""
    rows = 0
    while rows < out.shape[0] and _is(out[rows, 0], CAPTION_BG):
        rows += 1
    return rows


def test_visible_solid_amodal_dashed_and_caption(tmp_path) -> None:
    obj = GroundedObject(
        visible=Box(50, 100, 150, 200),
        amodal=Box(250, 100, 350, 290),
        amodal_predicted=True,
        label="mug",
    )
    out = draw_result(GREY, [obj], caption="the mug behind the laptop")
    assert out.shape == GREY.shape and not np.shares_memory(out, GREY)
    assert (GREY == 128).all()  # the input is left alone
    assert all(_hits(out[110:190, 50], VISIBLE_COLOUR))  # solid
    assert all(_hits(out[200, 60:140], VISIBLE_COLOUR))
    amodal_edge = _hits(out[110:280, 250], AMODAL_COLOUR)
    assert any(amodal_edge) and not all(amodal_edge)  # dashed: colour with gaps
    assert _hits(out[150, 250:350], AMODAL_COLOUR).count(True) <= 5  # only edges are drawn
    band = _band_height(out)
    assert 10 <= band < 60
    assert (out[2:band, :200] > 200).any()  # white text in the dark band
    assert (out[band + 1 :, :] == 128).mean() > 0.9  # and the band stops there
    saved = save_png(out, tmp_path / "a" / "b.png")
    assert np.array_equal(np.asarray(Image.open(saved)), out)


def test_shared_edges_show_both_colours() -> None:
    obj = GroundedObject(
        visible=Box(50, 100, 150, 200), amodal=Box(50, 100, 150, 280), amodal_predicted=True
    )
    left_edge = draw_result(GREY, [obj])[105:195, 50]
    assert any(_hits(left_edge, AMODAL_COLOUR)) and any(_hits(left_edge, VISIBLE_COLOUR))
    assert not any(_hits(left_edge, (128, 128, 128)))  # dash gaps show the solid box


def test_objects_get_distinct_colours() -> None:
    objects = [GroundedObject(visible=Box(20 + 60 * i, 50, 60 + 60 * i, 250)) for i in range(5)]
    out = draw_result(GREY, objects)
    colours = [tuple(int(v) for v in out[150, 20 + 60 * i]) for i in range(5)]
    assert colours[:4] == [visible for visible, _ in PALETTE]
    assert len(set(colours[:4])) == 4
    assert colours[4] == colours[0]  # the palette wraps around


def test_amodal_box_not_predicted_is_not_drawn() -> None:
    obj = GroundedObject(visible=None, amodal=Box(10, 10, 100, 100), amodal_predicted=False)
    assert np.array_equal(draw_result(GREY, [obj]), GREY)


def test_boxes_past_the_border_are_clipped() -> None:
    rgb = np.zeros((50, 50, 3), np.uint8)
    obj = GroundedObject(
        visible=Box(-1e12, 20, 30, 1e12), amodal=Box(-20, 10, 40, 80), amodal_predicted=True
    )
    out = draw_result(rgb, [obj])
    assert any(_hits(out[10], AMODAL_COLOUR))
    assert all(_hits(out[25:45, 30], VISIBLE_COLOUR))
    assert np.array_equal(draw_result(rgb, []), rgb)


def test_huge_and_non_finite_boxes_do_not_break_drawing() -> None:
    rgb = np.zeros((40, 60, 3), np.uint8)
    objects = [
        GroundedObject(visible=None, amodal=Box(-1e9, 5, 1e9, 1e9), amodal_predicted=True),
        GroundedObject(visible=Box(float("nan"), 0, 10, 10)),
        GroundedObject(visible=Box(0, 0, float("inf"), 10)),
    ]
    out = draw_result(rgb, objects)
    top = _hits(out[5], AMODAL_COLOUR)
    assert any(top) and not all(top)  # the dashes that fall on the image, nothing else
    assert not out[20:, :].any()


def test_long_captions_wrap_and_status_is_shown() -> None:
    short = _band_height(draw_result(GREY, [], caption="the mug"))
    long = "the small red mug partly hidden behind the open laptop on the left of the desk"
    assert _band_height(draw_result(GREY, [], caption=long)) >= 2 * short - 8
    ok = draw_result(GREY, [], caption="the mug", status_text="ok")
    failed = draw_result(GREY, [], caption="the mug", status_text="not_found")
    assert np.array_equal(ok, draw_result(GREY, [], caption="the mug"))
    assert not np.array_equal(ok, failed)
    assert _band_height(draw_result(GREY, [], caption="   ")) == 0


def test_grey_input_is_drawn_in_colour() -> None:
    grey = np.full((60, 80), 100, np.uint8)
    out = draw_result(grey, [GroundedObject(visible=Box(10, 10, 50, 50))])
    assert out.shape == (60, 80, 3) and _is(out[30, 10], VISIBLE_COLOUR)


def test_boxes_of_a_larger_source_frame_are_drawn_scaled_onto_a_reduced_decode() -> None:
    obj = GroundedObject(
        visible=Box(100, 200, 300, 400), amodal=Box(500, 200, 700, 580), amodal_predicted=True
    )
    reduced = draw_result(GREY, [obj], source_size=(800, 600))  # GREY is 400 x 300: half
    same = draw_result(
        GREY, [GroundedObject(Box(50, 100, 150, 200), Box(250, 100, 350, 290), True)]
    )
    assert np.array_equal(reduced, same)
    assert all(_hits(reduced[110:190, 50], VISIBLE_COLOUR))
    assert np.array_equal(
        draw_result(GREY, [obj], source_size=(400, 300)), draw_result(GREY, [obj])
    )
