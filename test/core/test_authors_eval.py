"""The EGM authors' scoring rules (their vllm_infer.py), each case worked out by hand."""

from __future__ import annotations

import pytest

from egm_ros.core.authors_eval import authors_box, authors_iou, scale_bbox


@pytest.mark.parametrize(
    ("text", "box"),
    [
        # The first "bbox_2d" anywhere wins, even inside the reasoning.
        (
            'maybe {"bbox_2d": [1, 2, 3, 4]}</think>```json\n[{"bbox_2d": [5, 6, 7, 8]}]\n```',
            [1, 2, 3, 4],
        ),
        ('"bbox_2d" : [ -1.5 , 2e2, .5, 1000 ]', [-1.5, 200, 0.5, 1000]),
        # No "bbox_2d": the first [a, b, c, d] (InternVL's <box>[[...]]</box> included).
        ("<ref>mug</ref><box>[[100, 200, 300, 400]]</box>", [100, 200, 300, 400]),
        ('{"bbox": [9, 8, 7, 6]} then [1, 2, 3, 4]', [9, 8, 7, 6]),
        # No list of four: the last four numbers, prose or not.
        ("x 1 y 2 z 3 w 4 v 5", [2, 3, 4, 5]),
        ("[1, 2, 3] and 4", [1, 2, 3, 4]),
        ("only 1, 2 and 3", None),
        ("nothing here", None),
    ],
)
def test_the_box_their_script_takes(text: str, box: list[float] | None) -> None:
    assert authors_box(text) == box


def test_scaling_rounds_half_to_even_and_clamps_to_the_last_pixel() -> None:
    # 502.5 * 200 / 1000 = 100.5 -> 100 (Python rounds half to even); 1000 -> width - 1.
    assert scale_bbox([0, 0, 502.5, 1000], 200, 100) == [0.0, 0.0, 100.0, 99.0]
    assert scale_bbox([507.5, 0, 1000, 1000], 200, 100) == [102.0, 0.0, 199.0, 99.0]
    # Outside 0..1000 (and non-finite: 0) clamped first; y 0..0 is then widened to 0..1.
    assert scale_bbox([-50, float("nan"), 1500, float("inf")], 200, 100) == [0, 0, 199, 1]


def test_a_box_of_zero_width_or_height_is_widened_to_one_pixel() -> None:
    # x: 50.2 and 50.4 both round to 50 -> 50..51; y: 999 and 1000 -> 99 and 99 -> stays 99.
    assert scale_bbox([251, 999, 252, 1000], 200, 100) == [50.0, 99.0, 51.0, 99.0]
    assert scale_bbox([0, 0, 0, 0], 1, 1) == [0.0, 0.0, 0.0, 0.0]  # a 1-pixel image cannot


def test_reversed_corners_are_kept_and_score_zero() -> None:
    box = scale_bbox([500, 500, 100, 100], 1000, 1000)
    assert box == [500.0, 500.0, 100.0, 100.0]
    assert authors_iou(box, [100, 100, 500, 500]) == 0.0


def test_iou_on_integer_boxes_and_zero_without_a_box() -> None:
    assert authors_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert authors_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert authors_iou([100, 50, 199, 99], [100, 50, 200, 100]) == pytest.approx(4851 / 5000)
    assert authors_iou(None, [0, 0, 10, 10]) == 0.0
    assert authors_iou([3, 3, 3, 3], [3, 3, 3, 3]) == 0.0  # both empty: their denominator is 0
