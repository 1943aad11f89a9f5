"""The demo's 3D scoring: errors of a box against the truth, and the run's summary."""

from __future__ import annotations

import pytest

from egm_ros.core.types import Box3D
from egm_ros.demo.errors3d import Error3D, Scores3D


def test_centre_and_size_errors_in_metres() -> None:
    truth = Box3D((0.0, 0.0, 1.0), (0.1, 0.2, 0.1))
    found = Box3D((0.03, 0.04, 1.0), (0.12, 0.2, 0.05))
    error = Error3D.of(found, truth)
    assert error.centre == pytest.approx(0.05)
    assert error.size == pytest.approx((0.02, 0.0, 0.05))
    assert error.text() == "centre 5.0 cm off, size off by 2.0/0.0/5.0 cm"


def test_summary_separates_answers_that_found_the_right_object() -> None:
    near, far = Error3D(0.01, (0.0, 0.0, 0.02)), Error3D(0.30, (0.1, 0.1, 0.1))
    scores = Scores3D(visible=[(near, 0.8), (far, 0.1)], amodal=[(near, 0.7)], without=["why"])
    text = scores.summary()
    assert text.splitlines()[0] == "3D: 2 results with 3D, 1 without"
    assert "visible 3D boxes, all (2): centre error median 15.5 cm, max 30.0 cm" in text
    assert "visible 3D boxes, 2D IoU >= 0.5 (1): centre error median 1.0 cm, max 1.0 cm" in text
    assert "amodal 3D boxes, all (1)" in text and "no 3D: why" in text
