"""Depth for the synthetic table-top scenes: a pinhole camera above the table, looking down at
it, sees the table plane, a wall behind it and each object standing at its place. The depth
image (metres per pixel, aligned to the scene's unchanged RGB image) and each object's
ground-truth 3D boxes follow from that model; the simulated camera publishes the depth and the
demo scores the node's 3D boxes against the ground truth.

The rig: the camera is CAMERA_HEIGHT_M above the table, pitched PITCH_DEG down; the table fills
the image from row ``TABLE_TOP * height`` down (as the RGB image shows it) and the wall stands
WALL_GAP_M behind the table's far edge. An object stands where its lowest pixel row meets the
table: its front is at the table's depth on that row and its surface faces the camera (a
cylinder for mugs and bottles, a sphere for balls, flat for boxes and books); it reaches back
by its depth (as deep as wide; a mug's body 0.8 and a book 0.75 of its width). The 2D scenes
do not keep objects apart in 3D, so where an object drawn in front would lie behind the
surface it hides, its surface is pulled FRONT_MARGIN_M in front of it (the RGB image says it
is in front).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from egm_ros.core.depth import Intrinsics, footprint_bounds
from egm_ros.core.types import Box3D
from egm_ros.data.scenes import TABLE_TOP, Scene, SceneObject

CAMERA_HEIGHT_M = 0.30
PITCH_DEG = 45.0
WALL_GAP_M = 0.30
FRONT_MARGIN_M = 0.02
HFOV_DEG = 60.0
#: Depth of each kind as a share of its width (the rest are as deep as wide).
DEPTH_OF_WIDTH = {"mug": 0.8, "book": 0.75}


def pinhole_intrinsics(width: int, height: int, hfov_deg: float = HFOV_DEG) -> Intrinsics:
    """The ideal pinhole camera of a ``width`` x ``height`` image (square pixels, principal
    point at the image centre): the simulated camera's camera_info ``K``."""
    fx = width / (2.0 * math.tan(math.radians(hfov_deg) / 2.0))
    return Intrinsics(fx, fx, width / 2.0, height / 2.0)


@dataclass
class SceneDepth:
    """``depth``: H x W float32 metres; per object, the ground truth of its visible part
    (what the camera sees of it) and of its whole extent, in the camera's optical frame."""

    depth: np.ndarray
    visible: list[Box3D]
    amodal: list[Box3D]


def _background(k: Intrinsics, size: tuple[int, int]) -> np.ndarray:
    """Depth of the table plane (lower rows) and the wall (upper rows) per pixel."""
    width, height = size
    pitch = math.radians(PITCH_DEG)
    b = (np.arange(height, dtype=np.float64) - k.cy) / k.fy  # ray slope per row
    table = CAMERA_HEIGHT_M / np.maximum(b * math.cos(pitch) + math.sin(pitch), 1e-3)
    top = int(height * TABLE_TOP)
    far_edge = table[top] * (math.cos(pitch) - b[top] * math.sin(pitch))
    wall = (far_edge + WALL_GAP_M) / (math.cos(pitch) - b * math.sin(pitch))
    column = np.where(np.arange(height) >= top, table, wall)
    return np.repeat(column[:, None], width, axis=1)


def _surface(obj: SceneObject, front: float, k: Intrinsics, shape: tuple[int, int]) -> np.ndarray:
    """Depth of the object's camera-facing surface over the whole image (used where its
    silhouette is): cylinder, sphere or flat face, ``front`` at its nearest point."""
    x1, y1, x2, y2 = obj.drawn
    width = x2 - x1 if obj.kind != "mug" else (x2 - x1) * 0.8  # a mug's body, without the handle
    radius = width / 2.0 * front / k.fx
    u = (np.arange(shape[1]) - (x1 + width / 2.0 - 0.5)) * front / k.fx
    v = (np.arange(shape[0]) - ((y1 + y2) / 2.0 - 0.5)) * front / k.fy
    if obj.kind in ("mug", "bottle"):
        offset = np.broadcast_to(u[None, :] ** 2, shape)
    elif obj.kind == "ball":
        offset = u[None, :] ** 2 + v[:, None] ** 2
    else:
        return np.full(shape, front)
    return front + radius - np.sqrt(np.maximum(radius**2 - offset, 0.0))


def scene_depth(scene: Scene, k: Intrinsics | None = None) -> SceneDepth:
    """The depth image of ``scene`` and its objects' ground-truth 3D boxes."""
    width, height = scene.size
    k = k or pinhole_intrinsics(width, height)
    depth = _background(k, scene.size)
    table_row = depth[:, 0].copy()
    in_front_of = np.full(depth.shape, np.inf)  # nearest object surface drawn so far
    amodal: dict[int, Box3D] = {}
    rows, cols = np.arange(height), np.arange(width)
    for obj in sorted(scene.objects, key=lambda o: o.depth):  # back to front, as drawn
        silhouette = scene.silhouette(obj.index)
        front = float(table_row[int(obj.amodal.y2) - 1])
        surface = np.minimum(
            _surface(obj, front, k, depth.shape), in_front_of - FRONT_MARGIN_M
        ).astype(np.float32)
        depth[silhouette] = surface[silhouette]
        in_front_of[silhouette] = surface[silhouette]
        (x0, y0), (x1, y1) = footprint_bounds(rows, cols, surface, silhouette, k)
        near = float(surface[silhouette].min())
        reach = (x1 - x0) * DEPTH_OF_WIDTH.get(obj.kind, 1.0)
        amodal[obj.index] = Box3D.from_bounds((x0, y0, near), (x1, y1, near + reach))
    depth = depth.astype(np.float32)
    visible = []
    for obj in scene.objects:
        shown = scene.mask == obj.index
        (x0, y0), (x1, y1) = footprint_bounds(rows, cols, depth, shown, k)
        z = depth[shown]
        visible.append(Box3D.from_bounds((x0, y0, float(z.min())), (x1, y1, float(z.max()))))
    return SceneDepth(depth, visible, [amodal[o.index] for o in scene.objects])
