"""Synthetic table-top scenes with partial occlusion, deterministic by seed.

Objects of a few kinds, colours and sizes stand on a table and are drawn back to front (lower
on the table = nearer the camera), so nearer objects hide parts of farther ones; some are placed
on purpose so that a front object hides 20-70 % of a back one. Every object's silhouette is also
rendered alone, which gives exact annotations: the amodal box (full extent), the visible box
(the pixels actually shown, from an object-id mask), the visible fraction, and who hides it from
which side. Used by the simulated camera, the demo, EGM-Tiny's training data and ``egm-eval``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from egm_ros.core.types import Box

KINDS = ("mug", "box", "ball", "bottle", "book")
COLOURS = {
    "red": (200, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 210),
    "yellow": (230, 200, 40),
    "purple": (140, 60, 170),
    "orange": (240, 130, 30),
}
#: Scale factor of each size word.
SIZES = {"small": 0.8, "large": 1.25}
#: (width, height) of each kind at scale 1, in pixels of a 224 x 224 image.
BASE_SIZE = {
    "mug": (40, 44),
    "box": (48, 48),
    "ball": (38, 38),
    "bottle": (24, 66),
    "book": (62, 28),
}
MIN_SIZE = 224
BACKGROUND = 255  # object-id mask value where no object is shown
TABLE_TOP = 0.35  # the table starts this far down the image
#: A deliberate occlusion hides this share of the back object.
DELIBERATE_COVER = (0.2, 0.7)
#: Every object keeps at least this much of itself visible (so it can be referred to).
MIN_VISIBLE = 0.3
#: Overlaps are either absent or at least this large: no grazing contacts of a few pixels.
MIN_COVER = 0.08
#: A deliberate occlusion moves at least one side of the visible box in by this share.
MIN_EXTENSION = 0.1
#: At most this many objects share kind, colour and size.
MAX_TWINS = 2


@dataclass(frozen=True)
class Occlusion:
    """One object hiding part of another."""

    by: int  # index of the occluding (nearer) object
    side: str  # where on the hidden object the hidden part is: left, right, top or bottom
    fraction: float  # share of the hidden object's silhouette this occluder covers


@dataclass
class SceneObject:
    index: int
    kind: str
    colour: str
    size: str  # "small" or "large"
    depth: int  # rank from the back: 0 = farthest, drawn first
    amodal: Box  # full extent (pixel bounds of the whole silhouette)
    visible: Box  # pixel bounds of the pixels actually shown
    visible_fraction: float
    occlusions: list[Occlusion] = field(default_factory=list)  # largest first
    drawn: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # the box it was drawn in

    @property
    def name(self) -> str:
        """Colour and kind, e.g. ``"red mug"`` (the answer's label)."""
        return f"{self.colour} {self.kind}"

    @property
    def full_name(self) -> str:
        """Size, colour and kind, e.g. ``"small red mug"``."""
        return f"{self.size} {self.colour} {self.kind}"

    @property
    def occluders(self) -> list[int]:
        return [o.by for o in self.occlusions]

    def extension(self) -> dict[str, float]:
        """How far the full object reaches past its visible box on each side, as a share of
        the full object's width or height (only sides where it does)."""
        a, v = self.amodal, self.visible
        out = {
            "left": (v.x1 - a.x1) / a.width,
            "right": (a.x2 - v.x2) / a.width,
            "top": (v.y1 - a.y1) / a.height,
            "bottom": (a.y2 - v.y2) / a.height,
        }
        return {side: share for side, share in out.items() if share > 0}


@dataclass
class Scene:
    seed: int
    image: np.ndarray  # H x W x 3 uint8
    objects: list[SceneObject]
    mask: np.ndarray  # H x W uint8: index of the object shown at each pixel, else BACKGROUND

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]

    def silhouette(self, index: int) -> np.ndarray:
        """Object ``index``'s whole silhouette (hidden parts included), H x W bool."""
        obj = self.objects[index]
        return _silhouette(obj.kind, obj.drawn, self.size)


@dataclass
class _Placed:
    kind: str
    colour: str
    size: str
    box: tuple[float, float, float, float]
    silhouette: np.ndarray  # bool H x W


def _draw(draw: ImageDraw.ImageDraw, kind: str, box, fill, ident: int | None = None) -> None:
    """Draw one object: its silhouette flat in ``ident`` (mask), or shaded in ``fill``.

    Both variants issue the same outer shapes, so a mask covers exactly the drawn pixels;
    details (highlights, faces, spines) stay inside the silhouette."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    flat = ident is not None
    base = ident if flat else tuple(fill)
    edge = ident if flat else tuple(max(0, c - 70) for c in fill)
    light = ident if flat else tuple(min(255, c + 60) for c in fill)
    if kind == "ball":
        draw.ellipse([x1, y1, x2, y2], fill=base, outline=edge, width=2)
        if not flat:
            draw.ellipse([x1 + w * 0.25, y1 + h * 0.2, x1 + w * 0.45, y1 + h * 0.38], fill=light)
    elif kind == "mug":
        handle = [x2 - w * 0.36, y1 + h * 0.22, x2, y1 + h * 0.68]
        draw.ellipse(handle, outline=edge, width=max(3, round(w * 0.12)))
        draw.rounded_rectangle(
            [x1, y1, x2 - w * 0.2, y2], radius=max(2, w * 0.12), fill=base, outline=edge, width=2
        )
        if not flat:
            draw.line([x1 + 2, y1 + h * 0.15, x2 - w * 0.2 - 2, y1 + h * 0.15], fill=light)
    elif kind == "bottle":
        draw.rectangle([x1 + w * 0.32, y1, x2 - w * 0.32, y1 + h * 0.32], fill=base, outline=edge)
        draw.rounded_rectangle(
            [x1, y1 + h * 0.28, x2, y2], radius=max(2, w * 0.3), fill=base, outline=edge, width=2
        )
        if not flat:
            draw.rectangle([x1 + w * 0.32, y1, x2 - w * 0.32, y1 + h * 0.07], fill=edge)
            draw.rectangle([x1 + 3, y1 + h * 0.5, x2 - 3, y1 + h * 0.7], fill=light)
    elif kind == "book":
        draw.rectangle([x1, y1, x2, y2], fill=base, outline=edge, width=2)
        if not flat:
            draw.rectangle([x1 + 3, y1 + h * 0.55, x2 - 3, y2 - 3], fill=(235, 230, 215))
            draw.line([x1 + w * 0.12, y1 + 2, x1 + w * 0.12, y2 - 2], fill=edge, width=2)
    elif kind == "box":  # a cube seen from above-right: hexagonal silhouette, three faces
        d = w * 0.25
        outline = [(x1, y1 + d), (x1 + d, y1), (x2, y1), (x2, y2 - d), (x2 - d, y2), (x1, y2)]
        draw.polygon(outline, fill=base, outline=edge, width=2)
        if not flat:
            draw.polygon(
                [(x1 + 2, y1 + d), (x1 + d, y1 + 2), (x2 - 2, y1 + 2), (x2 - d, y1 + d)], fill=light
            )
            draw.line([(x2 - d, y1 + d), (x2 - d, y2 - 2)], fill=edge, width=2)
            draw.line([(x2 - d, y1 + d), (x2 - 2, y1 + 2)], fill=edge, width=1)
    else:
        raise ValueError(f"unknown kind {kind!r}")


def _silhouette(kind: str, box, size: tuple[int, int]) -> np.ndarray:
    canvas = Image.new("L", size, 0)
    _draw(ImageDraw.Draw(canvas), kind, box, None, ident=1)
    return np.asarray(canvas) == 1


def _depth_order(placed: list[_Placed]) -> list[int]:
    """Indices back to front: a higher bottom edge stands farther back on the table."""
    return sorted(range(len(placed)), key=lambda i: (placed[i].box[3], i))


def _compose(placed: list[_Placed], size: tuple[int, int]) -> np.ndarray:
    mask = np.full((size[1], size[0]), BACKGROUND, np.uint8)
    for i in _depth_order(placed):
        mask[placed[i].silhouette] = i
    return mask


def _acceptable(placed: list[_Placed], size: tuple[int, int], pair: tuple[int, int] | None) -> bool:
    """Every object stays recognisable, overlaps are real or absent, and a deliberate
    ``(back, front)`` pair has the intended share hidden."""
    mask = _compose(placed, size)
    rank = {i: r for r, i in enumerate(_depth_order(placed))}
    for i, obj in enumerate(placed):
        total = obj.silhouette.sum()
        if (mask == i).sum() < MIN_VISIBLE * total:
            return False
        for j, other in enumerate(placed):
            if rank[j] > rank[i]:
                cover = (obj.silhouette & other.silhouette).sum() / total
                if 0 < cover < MIN_COVER:
                    return False
                if pair == (i, j) and not (
                    DELIBERATE_COVER[0] <= cover <= DELIBERATE_COVER[1]
                    and _shrinks(obj.silhouette, mask == i)
                ):
                    return False
    return True


def _shrinks(own: np.ndarray, shown: np.ndarray) -> bool:
    """Whether the visible box is at least MIN_EXTENSION smaller than the full one on some
    side (hiding a corner does not change a box: the amodal box must be inferred)."""
    full, seen = _bounds(own), _bounds(shown)
    return (
        max(seen.x1 - full.x1, full.x2 - seen.x2) >= MIN_EXTENSION * full.width
        or max(seen.y1 - full.y1, full.y2 - seen.y2) >= MIN_EXTENSION * full.height
    )


def _box_in_front_of(
    back: _Placed, w: float, h: float, size: tuple[int, int], rng: np.random.Generator
):
    """A box that stands nearer than ``back`` and overlaps it, or None if it cannot fit."""
    bx1, by1, bx2, by2 = back.box
    bottom = by2 + rng.uniform(0.15, 0.75) * h
    cx = (bx1 + bx2) / 2 + rng.uniform(-0.8, 0.8) * ((bx2 - bx1) + w) / 2
    if bottom > size[1] - 2 or not w / 2 + 2 <= cx <= size[0] - w / 2 - 2:
        return None
    return (cx - w / 2, bottom - h, cx + w / 2, bottom)


def _box_anywhere(w: float, h: float, size: tuple[int, int], rng: np.random.Generator):
    cx = rng.uniform(w / 2 + 2, size[0] - w / 2 - 2)
    bottom = rng.uniform(size[1] * TABLE_TOP + h * 0.6, size[1] - 2)
    return (cx - w / 2, bottom - h, cx + w / 2, bottom)


def generate_scene(
    seed: int,
    *,
    size: int = 224,
    width: int | None = None,
    height: int | None = None,
    min_objects: int = 3,
    max_objects: int = 6,
) -> Scene:
    """The scene of ``seed``: the same seed gives the same pixels and annotations.

    ``size`` makes a square scene; ``width`` and ``height`` (both or neither) another aspect,
    as a camera sees it: objects keep their proportions, scaled with the shorter side, and the
    table spans the whole width, so a wide frame holds the same objects with more room."""
    if (width is None) != (height is None):
        raise ValueError("give both width and height, or neither")
    dims = (size, size) if width is None or height is None else (int(width), int(height))
    if min(dims) < MIN_SIZE:
        raise ValueError(f"scene sides must be at least {MIN_SIZE}, got {dims[0]}x{dims[1]}")
    rng = np.random.default_rng(seed)
    scale = min(dims) / 224.0
    count = int(rng.integers(min_objects, max_objects + 1))
    # Few kinds and colours per scene, so similar candidates (two mugs, two red things) occur.
    kinds = [str(k) for k in rng.choice(KINDS, int(rng.integers(2, 5)), replace=False)]
    colours = [str(c) for c in rng.choice(list(COLOURS), int(rng.integers(2, 5)), replace=False)]
    placed: list[_Placed] = []
    for _ in range(60 * max_objects):
        if len(placed) >= count:
            break
        kind, colour = str(rng.choice(kinds)), str(rng.choice(colours))
        size_name = str(rng.choice(list(SIZES)))
        twins = sum((p.kind, p.colour, p.size) == (kind, colour, size_name) for p in placed)
        if twins >= MAX_TWINS:
            continue
        w = BASE_SIZE[kind][0] * SIZES[size_name] * scale
        h = BASE_SIZE[kind][1] * SIZES[size_name] * scale
        pair = None
        if placed and rng.random() < 0.6:
            back = int(rng.integers(len(placed)))
            box = _box_in_front_of(placed[back], w, h, dims, rng)
            pair = (back, len(placed))
        else:
            box = _box_anywhere(w, h, dims, rng)
        if box is None:
            continue
        candidate = _Placed(kind, colour, size_name, box, _silhouette(kind, box, dims))
        if _acceptable([*placed, candidate], dims, pair):
            placed.append(candidate)
    if len(placed) < min_objects:
        raise RuntimeError(f"seed {seed}: could not place {min_objects} objects")
    image, mask = _render(placed, dims, rng)
    return Scene(seed=seed, image=image, objects=_annotate(placed, mask), mask=mask)


def _render(placed: list[_Placed], size: tuple[int, int], rng: np.random.Generator):
    """Wall and table with a slight wood grain, objects back to front, a little noise."""
    width, height = size
    top = int(height * TABLE_TOP)
    base = np.empty((height, width, 3), np.float32)
    base[:top] = np.array([200, 205, 215]) + rng.integers(-15, 16, 3)
    base[top:] = np.array([170, 140, 105]) + rng.integers(-15, 16, 3)
    rows = np.arange(height - top, dtype=np.float32)[:, None]
    base[top:] += (5 * np.sin(rows * rng.uniform(0.3, 0.6) + rng.uniform(0, 6.3)))[..., None]
    img = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for i in _depth_order(placed):
        obj = placed[i]
        _draw(draw, obj.kind, obj.box, COLOURS[obj.colour])
    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * 3
    image = np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8)
    return image, _compose(placed, size)


def _bounds(pixels: np.ndarray) -> Box:
    cols, rows = np.flatnonzero(pixels.any(axis=0)), np.flatnonzero(pixels.any(axis=1))
    return Box(float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def _side(hidden: np.ndarray, box: Box) -> str:
    """Where the hidden pixels lie relative to the object's centre."""
    ys, xs = np.nonzero(hidden)
    cx, cy = box.center
    dx, dy = (xs.mean() + 0.5 - cx) / box.width, (ys.mean() + 0.5 - cy) / box.height
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "bottom" if dy > 0 else "top"


def _annotate(placed: list[_Placed], mask: np.ndarray) -> list[SceneObject]:
    rank = {i: r for r, i in enumerate(_depth_order(placed))}
    objects = []
    for i, obj in enumerate(placed):
        own = obj.silhouette
        amodal = _bounds(own)
        occlusions = []
        for j, other in enumerate(placed):
            hidden = own & other.silhouette
            if rank[j] > rank[i] and hidden.any():
                occlusions.append(
                    Occlusion(j, _side(hidden, amodal), float(hidden.sum() / own.sum()))
                )
        occlusions.sort(key=lambda o: -o.fraction)
        shown = mask == i
        objects.append(
            SceneObject(
                index=i,
                kind=obj.kind,
                colour=obj.colour,
                size=obj.size,
                depth=rank[i],
                amodal=amodal,
                visible=_bounds(shown),
                visible_fraction=float(shown.sum() / own.sum()),
                occlusions=occlusions,
                drawn=obj.box,
            )
        )
    return objects
