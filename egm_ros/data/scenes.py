"""Synthetic table-top scenes with partial occlusion, deterministic by seed.

Objects of a few kinds, colours and sizes are drawn back to front, so nearer objects hide parts
of farther ones. For every object the scene knows its amodal box (full extent), its visible box
(from the pixels actually shown, via an object-id mask), how much of it is hidden and by whom.
Used by the simulated camera, the demo, the EGM-Tiny training data and ``egm-eval --synthetic``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from egm_ros.core.types import Box

KINDS = ("mug", "box", "ball", "bottle", "book")
COLOURS = {
    "red": (210, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 210),
    "yellow": (230, 200, 40),
    "purple": (140, 60, 170),
    "orange": (240, 130, 30),
}
#: (width, height) of each kind at scale 1, in pixels of a 224 x 224 image.
BASE_SIZE = {
    "mug": (34, 38),
    "box": (44, 40),
    "ball": (34, 34),
    "bottle": (20, 56),
    "book": (52, 30),
}
SIZES = {"small": 0.8, "large": 1.25}


@dataclass
class SceneObject:
    index: int
    kind: str
    colour: str
    size: str
    depth: int  # 0 = farthest; drawn first
    amodal: Box
    visible: Box | None = None
    visible_fraction: float = 1.0
    occluders: list[int] = field(default_factory=list)
    hidden_sides: list[str] = field(default_factory=list)  # where the hidden part is

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"


@dataclass
class Scene:
    seed: int
    image: np.ndarray
    objects: list[SceneObject]

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def _draw(draw: ImageDraw.ImageDraw, kind: str, box: Box, fill, ident: int | None = None):
    """Draw one object's silhouette (``ident`` given: into the id mask, flat)."""
    colour = ident if ident is not None else fill
    outline = ident if ident is not None else tuple(max(0, c - 70) for c in fill)
    x1, y1, x2, y2 = box.x1, box.y1, box.x2, box.y2
    w, h = x2 - x1, y2 - y1
    if kind == "ball":
        draw.ellipse([x1, y1, x2, y2], fill=colour, outline=outline, width=2)
    elif kind == "mug":
        draw.ellipse(
            [x2 - w * 0.35, y1 + h * 0.25, x2, y1 + h * 0.7],
            outline=outline,
            width=max(2, int(w * 0.1)),
        )
        draw.rectangle([x1, y1, x2 - w * 0.2, y2], fill=colour, outline=outline, width=2)
    elif kind == "bottle":
        draw.rectangle(
            [x1 + w * 0.3, y1, x2 - w * 0.3, y1 + h * 0.3], fill=colour, outline=outline, width=1
        )
        draw.rounded_rectangle(
            [x1, y1 + h * 0.25, x2, y2],
            radius=max(1, w * 0.3),
            fill=colour,
            outline=outline,
            width=2,
        )
    elif kind == "book":
        draw.rectangle([x1, y1, x2, y2], fill=colour, outline=outline, width=2)
        if ident is None:
            draw.line([x1 + w * 0.1, y1, x1 + w * 0.1, y2], fill=outline, width=2)
    else:  # box
        draw.rectangle([x1, y1, x2, y2], fill=colour, outline=outline, width=2)
        if ident is None:
            draw.line([x1, y1, x2, y2], fill=outline, width=1)


def generate_scene(
    seed: int, *, size: int = 224, min_objects: int = 3, max_objects: int = 5
) -> Scene:
    """A scene from ``seed``: same seed, same pixels and annotations."""
    rng = np.random.default_rng(seed)
    scale = size / 224.0
    count = int(rng.integers(min_objects, max_objects + 1))
    objects: list[SceneObject] = []
    table_top = size * 0.35
    for i in range(count):
        kind = str(rng.choice(KINDS))
        colour = str(rng.choice(list(COLOURS)))
        size_name = str(rng.choice(list(SIZES)))
        bw, bh = BASE_SIZE[kind]
        w, h = bw * SIZES[size_name] * scale, bh * SIZES[size_name] * scale
        if i > 0 and rng.random() < 0.6:
            # Put it in front of an earlier object, overlapping part of it.
            other = objects[int(rng.integers(0, i))].amodal
            cx = other.center[0] + rng.uniform(-0.7, 0.7) * other.width
            bottom = other.y2 + rng.uniform(0.05, 0.5) * h
        else:
            cx = rng.uniform(w / 2 + 4, size - w / 2 - 4)
            bottom = rng.uniform(table_top + h, size - 6)
        cx = float(np.clip(cx, w / 2 + 2, size - w / 2 - 2))
        bottom = float(np.clip(bottom, table_top + h * 0.5, size - 2))
        box = Box(cx - w / 2, bottom - h, cx + w / 2, bottom)
        objects.append(SceneObject(i, kind, colour, size_name, depth=0, amodal=box))
    # Depth order: lower on the table (larger bottom y) is nearer the camera.
    for depth, obj in enumerate(sorted(objects, key=lambda o: o.amodal.y2)):
        obj.depth = depth
    _avoid_duplicate_names(objects, rng)
    image, mask = _render(objects, size, rng)
    _annotate_visibility(objects, mask)
    return Scene(seed=seed, image=image, objects=objects)


def _avoid_duplicate_names(objects: list[SceneObject], rng: np.random.Generator) -> None:
    """At most two objects share kind and colour (ordinal expressions need some repeats)."""
    seen: dict[str, int] = {}
    for obj in objects:
        while seen.get(obj.name, 0) >= 2:
            obj.colour = str(rng.choice(list(COLOURS)))
        seen[obj.name] = seen.get(obj.name, 0) + 1


def _render(
    objects: list[SceneObject], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    wall = np.array([200, 205, 215]) + rng.integers(-15, 15, 3)
    table = np.array([170, 140, 105]) + rng.integers(-15, 15, 3)
    base = np.empty((size, size, 3), np.float32)
    top = int(size * 0.35)
    base[:top] = wall
    base[top:] = table
    base += rng.normal(0, 4, base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    mask = Image.new("L", (size, size), 255)
    draw, mdraw = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    for obj in sorted(objects, key=lambda o: o.depth):
        _draw(draw, obj.kind, obj.amodal, COLOURS[obj.colour])
        _draw(mdraw, obj.kind, obj.amodal, None, ident=obj.index)
    return np.asarray(img), np.asarray(mask)


def _annotate_visibility(objects: list[SceneObject], mask: np.ndarray) -> None:
    full = Image.new("L", mask.shape[::-1], 255)
    for obj in objects:
        full.paste(255, (0, 0, *full.size))
        _draw(ImageDraw.Draw(full), obj.kind, obj.amodal, None, ident=obj.index)
        own = np.asarray(full) == obj.index
        shown = mask == obj.index
        total = int(own.sum())
        obj.visible_fraction = float(shown.sum()) / total if total else 0.0
        ys, xs = np.nonzero(shown)
        obj.visible = (
            Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            if xs.size
            else None
        )
        hiding = mask[own & ~shown]
        obj.occluders = sorted({int(v) for v in np.unique(hiding) if v != 255})
        obj.hidden_sides = _hidden_sides(obj)


def _hidden_sides(obj: SceneObject) -> list[str]:
    if obj.visible is None:
        return ["all"]
    a, v, sides = obj.amodal, obj.visible, []
    tol_x, tol_y = 0.08 * a.width, 0.08 * a.height
    if v.y2 < a.y2 - tol_y:
        sides.append("down")
    if v.y1 > a.y1 + tol_y:
        sides.append("up")
    if v.x1 > a.x1 + tol_x:
        sides.append("left")
    if v.x2 < a.x2 - tol_x:
        sides.append("right")
    return sides
