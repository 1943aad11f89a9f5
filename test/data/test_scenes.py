"""Synthetic scenes: deterministic, and the visible/amodal annotations match the pixels."""

from __future__ import annotations

import numpy as np

from egm_ros.data.scenes import generate_scene


def test_same_seed_same_scene_other_seed_other_scene() -> None:
    a, b, c = generate_scene(5), generate_scene(5), generate_scene(6)
    assert np.array_equal(a.image, b.image)
    assert [o.amodal for o in a.objects] == [o.amodal for o in b.objects]
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (224, 224, 3) and a.image.dtype == np.uint8


def test_visible_box_lies_in_the_amodal_box_and_shrinks_when_occluded() -> None:
    occluded = 0
    for seed in range(60):
        for obj in generate_scene(seed).objects:
            if obj.visible is None:
                continue
            a, v = obj.amodal, obj.visible
            assert a.x1 - 1 <= v.x1 and v.x2 <= a.x2 + 1.5
            assert a.y1 - 1 <= v.y1 and v.y2 <= a.y2 + 1.5
            if obj.visible_fraction < 0.7:
                occluded += 1
                assert obj.occluders  # hidden pixels are someone else's
                assert all(generate_scene(seed).objects[j].depth > obj.depth for j in obj.occluders)
            if not obj.occluders:
                assert obj.visible_fraction > 0.99
    assert occluded >= 20  # the generator really makes occlusion


def test_visible_box_matches_the_drawn_colour() -> None:
    from egm_ros.data.scenes import COLOURS

    scene = generate_scene(11)
    front = max(scene.objects, key=lambda o: o.depth)  # nothing hides the nearest object
    v = front.visible
    crop = scene.image[int(v.y1) : int(v.y2), int(v.x1) : int(v.x2)].astype(int)
    colour = np.array(COLOURS[front.colour])
    assert (np.abs(crop - colour).sum(axis=2) < 30).mean() > 0.3


def test_larger_scenes() -> None:
    scene = generate_scene(1, size=448)
    assert scene.image.shape == (448, 448, 3) and scene.size == (448, 448)
