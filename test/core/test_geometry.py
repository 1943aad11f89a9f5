"""Box arithmetic."""

from __future__ import annotations

import pytest

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


def test_iou() -> None:
    a = Box(0, 0, 10, 10)
    assert iou(a, a) == 1.0
    assert iou(a, Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(a, Box(20, 20, 30, 30)) == 0.0
    assert iou(Box(0, 0, 0, 0), Box(0, 0, 0, 0)) == 0.0


def test_clip_scale_relative_and_centre_size() -> None:
    assert clip_box(Box(-5, -5, 50, 5), 20, 10) == Box(0, 0, 20, 5)
    assert scale_box(Box(1, 2, 3, 4), 2, 10) == Box(2, 20, 6, 40)
    assert relative_to_pixels(Box(0, 500, 1000, 1000), 640, 480) == Box(0, 240, 640, 480)
    assert box_to_center_size(Box(10, 20, 30, 60)) == (20, 40, 20, 40)
    assert center_size_to_box(20, 40, 20, 40) == Box(10, 20, 30, 60)
