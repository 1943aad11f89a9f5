"""The synthetic scenes' depth: a pinhole camera's view of the table plane, the wall and the
objects at their places, consistent with the unchanged RGB image's occlusions; and the depth
step (core.depth) against the scenes' ground-truth 3D boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from egm_ros.core.depth import decode_depth, lift_object
from egm_ros.core.types import GroundedObject
from egm_ros.data.scene_depth import (
    CAMERA_HEIGHT_M,
    PITCH_DEG,
    pinhole_intrinsics,
    scene_depth,
)
from egm_ros.data.scenes import BACKGROUND, TABLE_TOP, generate_scene


def points(depth: np.ndarray, k) -> np.ndarray:
    """H x W x 3 back-projected pixel centres."""
    v, u = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]]
    return np.stack([(u - k.cx) / k.fx * depth, (v - k.cy) / k.fy * depth, depth], axis=-1)


@pytest.mark.parametrize("size", [(224, 224), (320, 240)])
def test_table_and_wall_pixels_lie_on_their_planes(size) -> None:
    scene = generate_scene(4, width=size[0], height=size[1])
    k = pinhole_intrinsics(*scene.size)
    out = scene_depth(scene, k)
    assert out.depth.shape == (size[1], size[0]) and out.depth.dtype == np.float32
    p = points(out.depth.astype(np.float64), k)
    pitch = math.radians(PITCH_DEG)
    down = np.array([0.0, math.cos(pitch), math.sin(pitch)])
    forward = np.array([0.0, -math.sin(pitch), math.cos(pitch)])
    free = scene.mask == BACKGROUND
    top = int(size[1] * TABLE_TOP)
    table, wall = free.copy(), free.copy()
    table[:top], wall[top:] = False, False
    assert np.allclose(p[table] @ down, CAMERA_HEIGHT_M, atol=1e-4)  # height above the table
    distance = p[wall] @ forward
    assert np.ptp(distance) < 1e-4 and distance.mean() > (p[table] @ forward).max()


def _neighbours(a: np.ndarray):
    """Pairs of horizontally and vertically adjacent pixels' values."""
    yield a[:, :-1], a[:, 1:]
    yield a[:-1], a[1:]


def test_objects_stand_on_the_table_and_hide_only_what_is_behind_them() -> None:
    standing = 0
    for seed in range(6):
        scene = generate_scene(seed)
        out = scene_depth(scene)
        rank = {o.index: o.depth for o in scene.objects}
        # Where two objects' pixels meet, the one drawn in front (the RGB image) is nearer.
        for (m1, m2), (z1, z2) in zip(_neighbours(scene.mask), _neighbours(out.depth), strict=True):
            meet = (m1 != m2) & (m1 != BACKGROUND) & (m2 != BACKGROUND)
            for i, j, zi, zj in zip(m1[meet], m2[meet], z1[meet], z2[meet], strict=True):
                front, back = (zi, zj) if rank[int(i)] > rank[int(j)] else (zj, zi)
                assert front < back, (seed, i, j)
        # An object touching no other stands where its lowest row meets the table.
        table = scene_depth_table(scene)
        for obj in scene.objects:
            alone = not obj.occlusions and all(obj.index not in o.occluders for o in scene.objects)
            if alone:
                nearest = out.depth[scene.mask == obj.index].min()
                assert abs(nearest - table[int(obj.amodal.y2) - 1]) < 1e-4, (seed, obj.index)
                standing += 1
    assert standing >= 5


def scene_depth_table(scene) -> np.ndarray:
    """The table's depth per row with no object on it."""
    empty = type(scene)(scene.seed, scene.image, [], np.full_like(scene.mask, BACKGROUND))
    return scene_depth(empty).depth[:, 0]


def test_ground_truth_boxes_hold_what_the_camera_sees() -> None:
    scene = generate_scene(11)
    k = pinhole_intrinsics(*scene.size)
    out = scene_depth(scene, k)
    p = points(out.depth.astype(np.float64), k)
    for obj, visible, amodal in zip(scene.objects, out.visible, out.amodal, strict=True):
        seen = p[scene.mask == obj.index]
        assert np.all(seen >= np.array(visible.low) - 1e-6)
        assert np.all(seen <= np.array(visible.high) + 1e-6)
        assert np.all(np.array(amodal.low) <= np.array(visible.low) + 1e-6)
        assert np.all(np.array(amodal.high) >= np.array(visible.high) - 1e-6)
        assert amodal.size[2] > 0.3 * amodal.size[0]  # it reaches back by its depth


def test_the_depth_step_finds_the_scene_objects_in_3d() -> None:
    errors, amodal_errors = [], []
    for seed in range(40):
        scene = generate_scene(seed)
        k = pinhole_intrinsics(*scene.size)
        out = scene_depth(scene, k)
        mm = np.round(out.depth * 1000).astype("<u2")
        depth = decode_depth("16UC1", *scene.size, scene.size[0] * 2, mm.tobytes())
        for obj in scene.objects:
            found = GroundedObject(visible=obj.visible, amodal=obj.amodal, amodal_predicted=True)
            lift_object(depth, k, found)
            truth = out.visible[obj.index]
            errors.append(np.linalg.norm(np.subtract(found.visible_3d.center, truth.center)))
            truth = out.amodal[obj.index]
            amodal_errors.append(np.linalg.norm(np.subtract(found.amodal_3d.center, truth.center)))
    errors, amodal_errors = np.array(errors), np.array(amodal_errors)
    assert np.median(errors) < 0.005 and np.mean(errors < 0.03) >= 0.97, np.sort(errors)[-5:]
    assert np.median(amodal_errors) < 0.01 and np.mean(amodal_errors < 0.04) >= 0.95
