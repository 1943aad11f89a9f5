"""Box arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egm_ros.core.geometry import (
    box_to_center_size,
    center_size_to_box,
    clip_box,
    iou,
    make_box,
    relative_to_pixels,
    scale_box,
)
from egm_ros.core.types import Box


def test_make_box_orders_corners() -> None:
    assert make_box(3, 4, 1, 2) == Box(1, 2, 3, 4)
    assert make_box(1, 4, 3, 2) == Box(1, 2, 3, 4)


def test_iou() -> None:
    a = Box(0, 0, 10, 10)
    assert iou(a, a) == 1.0
    assert iou(a, Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(a, Box(2, 2, 4, 4)) == pytest.approx(4 / 100)
    assert iou(a, Box(10, 0, 20, 10)) == 0.0  # touching edges
    assert iou(a, Box(20, 20, 30, 30)) == 0.0
    assert iou(Box(0, 0, 0, 0), Box(0, 0, 0, 0)) == 0.0


def test_clip_scale_relative_and_centre_size() -> None:
    assert clip_box(Box(-5, -5, 50, 5), 20, 10) == Box(0, 0, 20, 5)
    assert clip_box(Box(30, 30, 40, 40), 20, 10).area == 0.0
    assert scale_box(Box(1, 2, 3, 4), 2, 10) == Box(2, 20, 6, 40)
    assert relative_to_pixels(Box(0, 500, 1000, 1000), 640, 480) == Box(0, 240, 640, 480)
    assert relative_to_pixels(Box(250, 100, 750, 900), 1920, 1080) == Box(480, 108, 1440, 972)
    assert box_to_center_size(Box(10, 20, 30, 60)) == (20, 40, 20, 40)
    assert center_size_to_box(20, 40, 20, 40) == Box(10, 20, 30, 60)
    assert center_size_to_box(20, 40, -20, -40) == Box(10, 20, 30, 60)


finite = st.floats(-1e4, 1e4, allow_nan=False)
boxes = st.tuples(finite, finite, finite, finite).map(lambda c: make_box(*c))


@settings(max_examples=200, deadline=None)
@given(a=boxes, b=boxes)
def test_iou_is_a_symmetric_ratio(a: Box, b: Box) -> None:
    assert 0.0 <= iou(a, b) <= 1.0 + 1e-9
    assert iou(a, b) == pytest.approx(iou(b, a))
    if a.area > 1e-3:
        assert iou(a, a) == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(box=boxes, w=st.floats(1, 5000), h=st.floats(1, 5000))
def test_clip_stays_inside_and_centre_size_round_trips(box: Box, w: float, h: float) -> None:
    clipped = clip_box(box, w, h)
    assert 0 <= clipped.x1 <= clipped.x2 <= w and 0 <= clipped.y1 <= clipped.y2 <= h
    back = center_size_to_box(*box_to_center_size(box))
    assert [back.x1, back.y1, back.x2, back.y2] == pytest.approx(
        [box.x1, box.y1, box.x2, box.y2], abs=1e-6
    )
