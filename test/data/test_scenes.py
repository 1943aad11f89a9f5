"""Synthetic scenes: deterministic by seed, and the visible/amodal annotations match the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from egm_ros.core.types import Box
from egm_ros.data.scenes import BACKGROUND, COLOURS, generate_scene

SEEDS = range(40)


@pytest.fixture(scope="module")
def scenes():
    return [generate_scene(seed) for seed in SEEDS]


def pixel_bounds(pixels: np.ndarray) -> Box:
    ys, xs = np.nonzero(pixels)
    return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def test_same_seed_same_scene_other_seed_other_scene() -> None:
    a, b, c = generate_scene(5), generate_scene(5), generate_scene(6)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.objects == b.objects
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (224, 224, 3) and a.image.dtype == np.uint8
    assert a.mask.shape == (224, 224)


def test_object_counts_and_every_object_stays_recognisable(scenes) -> None:
    counts = {len(s.objects) for s in scenes}
    assert counts <= set(range(3, 7)) and len(counts) >= 3
    for scene in scenes:
        for obj in scene.objects:
            assert obj.visible_fraction >= 0.3
            a = obj.amodal
            assert 0 <= a.x1 < a.x2 <= 224 and 0 <= a.y1 < a.y2 <= 224


def test_visible_box_is_the_bounds_of_the_shown_pixels(scenes) -> None:
    for scene in scenes:
        for obj in scene.objects:
            assert obj.visible == pixel_bounds(scene.mask == obj.index)


def test_visible_box_inside_amodal_box_and_equal_when_nothing_hides_it(scenes) -> None:
    unoccluded = 0
    for scene in scenes:
        for obj in scene.objects:
            a, v = obj.amodal, obj.visible
            assert a.x1 <= v.x1 and a.y1 <= v.y1 and v.x2 <= a.x2 and v.y2 <= a.y2
            if not obj.occlusions:
                unoccluded += 1
                assert v == a and obj.visible_fraction == 1.0
                assert obj.extension() == {}
    assert unoccluded > 50


def test_occluded_objects_have_smaller_visible_boxes_and_nearer_occluders(scenes) -> None:
    shrunk, deliberate = 0, 0
    for scene in scenes:
        for obj in scene.objects:
            if not obj.occlusions:
                continue
            hidden = 1.0 - obj.visible_fraction
            assert hidden > 0
            # Occluders may overlap each other, so their shares add up to at least the hidden part.
            assert sum(o.fraction for o in obj.occlusions) >= hidden - 1e-9
            for occ in obj.occlusions:
                assert scene.objects[occ.by].depth > obj.depth
                assert occ.side in {"left", "right", "top", "bottom"}
            if obj.extension():
                shrunk += 1
                assert obj.visible.area < obj.amodal.area
            if 0.2 <= hidden <= 0.7:
                deliberate += 1
    assert shrunk >= 20 and deliberate >= 20  # the generator really makes occlusion


def test_occlusion_side_points_at_the_occluder(scenes) -> None:
    checked = 0
    for scene in scenes:
        for obj in scene.objects:
            for occ in obj.occlusions:
                front = scene.objects[occ.by].amodal
                dx = front.center[0] - obj.amodal.center[0]
                dy = front.center[1] - obj.amodal.center[1]
                if occ.side == "bottom":
                    assert dy > 0
                elif occ.side in ("left", "right") and abs(dx) > 0.5 * obj.amodal.width:
                    assert (dx > 0) == (occ.side == "right")
                    checked += 1
    assert checked > 5


def test_mask_matches_the_drawn_colours(scenes) -> None:
    for scene in scenes[:15]:
        image = scene.image.astype(int)
        fills = [np.array(COLOURS[o.colour]) for o in scene.objects]
        for obj, fill in zip(scene.objects, fills, strict=True):
            shown = image[scene.mask == obj.index]
            assert (np.abs(shown - fill).sum(axis=1) < 40).mean() > 0.3, obj
        background = image[scene.mask == BACKGROUND]
        near_objects = np.zeros(len(background), bool)
        for fill in fills:
            near_objects |= np.abs(background - fill).sum(axis=1) < 40
        assert near_objects.mean() < 0.01


def test_size_is_configurable_but_at_least_224() -> None:
    small, large = generate_scene(1), generate_scene(1, size=448)
    assert large.image.shape == (448, 448, 3) and large.size == (448, 448)
    assert [o.kind for o in large.objects] == [o.kind for o in small.objects]
    assert large.objects[0].amodal.width == pytest.approx(2 * small.objects[0].amodal.width, abs=3)
    with pytest.raises(ValueError, match="at least 224"):
        generate_scene(1, size=160)
