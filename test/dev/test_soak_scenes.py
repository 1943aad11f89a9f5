"""The soak camera's pictures: synthetic scenes at the camera's size, each with expressions
that name exactly one of its objects, shown in turn."""

from __future__ import annotations

import random

from dev.soak.scenes import SceneSet, scene_at
from egm_ros.data.expressions import expressions
from egm_ros.data.scenes import generate_scene


def test_scenes_are_at_the_cameras_size_with_their_own_expressions() -> None:
    scenes = SceneSet(3, 640, 480, seed=5)
    assert len(scenes.scenes) == 3
    for scene in scenes.scenes:
        assert scene.rgb.shape == (480, 640, 3) and scene.rgb.flags["C_CONTIGUOUS"]
        assert scene.rgb.std() > 10  # a table-top scene, not a flat frame
        own = generate_scene(scene.seed, width=640, height=480)
        assert set(scene.commands) == {e.text for e in expressions(own)}
    rng = random.Random(0)
    assert scenes.command(1, rng) in scenes.scenes[1].commands


def test_a_small_camera_gets_the_scene_scaled_down() -> None:
    scene = scene_at(3, 160, 120)  # under the generator's 224: rendered at 299x224
    assert scene.rgb.shape == (120, 160, 3) and scene.commands


def test_each_scene_is_shown_for_its_frames_then_the_next_in_turn() -> None:
    scenes = SceneSet(2, 320, 240)
    shown = [scenes.index_at(frame, frames_per_scene=3) for frame in range(8)]
    assert shown == [0, 0, 0, 1, 1, 1, 0, 0]
