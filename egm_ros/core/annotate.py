"""Draw grounding results: visible box solid, amodal box dashed, the command as a caption.
Used by ``egm-ground --out``, the node's ``debug_image`` and the demo."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from egm_ros.core.geometry import scale_box
from egm_ros.core.types import Box, GroundedObject

#: (visible, amodal) colour per object, in order; the two differ so that the edges an amodal
#: box shares with its visible box still show both.
PALETTE: list[tuple[tuple[int, int, int], tuple[int, int, int]]] = [
    ((0, 220, 0), (255, 140, 0)),
    ((0, 170, 255), (255, 60, 200)),
    ((255, 230, 0), (170, 90, 255)),
    ((0, 230, 200), (255, 50, 50)),
]
VISIBLE_COLOUR, AMODAL_COLOUR = PALETTE[0]
CAPTION_BG = (0, 0, 0)
CAPTION_FG = (255, 255, 255)
DASH, GAP = 8, 6
MAX_CAPTION_LINES = 3


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _finite(box: Box) -> bool:
    return all(math.isfinite(v) for v in (box.x1, box.y1, box.x2, box.y2))


def _dashes(lo: float, hi: float, limit: float, margin: int) -> list[tuple[float, float]]:
    """The dash intervals along ``lo..hi`` that fall near ``0..limit``: an amodal box far
    past the border must not cost one Pillow call per off-screen dash. The pattern stays
    anchored at ``lo`` so clipping does not shift it."""
    start, stop = max(lo, -margin), min(hi, limit + margin)
    period = DASH + GAP
    pos = lo + math.floor((start - lo) / period) * period
    out = []
    while pos < stop:
        a, b = max(pos, start), min(pos + DASH, stop)
        if a < b:
            out.append((a, b))
        pos += period
    return out


def _dashed_box(draw: ImageDraw.ImageDraw, box: Box, size: tuple[int, int], colour, width):
    w, h = size
    for y in (box.y1, box.y2):
        if -width <= y <= h + width:
            for a, b in _dashes(box.x1, box.x2, w, width):
                draw.line([(a, y), (b, y)], fill=colour, width=width)
    for x in (box.x1, box.x2):
        if -width <= x <= w + width:
            for a, b in _dashes(box.y1, box.y2, h, width):
                draw.line([(x, a), (x, b)], fill=colour, width=width)


def _clipped(box: Box, size: tuple[int, int], margin: int) -> list[float]:
    """Corners clamped to just outside the image (Pillow needs sane, ordered numbers)."""
    w, h = size
    xs = sorted(min(max(v, -margin), w + margin) for v in (box.x1, box.x2))
    ys = sorted(min(max(v, -margin), h + margin) for v in (box.y1, box.y2))
    return [xs[0], ys[0], xs[1], ys[1]]


def _wrap(text: str, font, max_width: float) -> list[str]:
    """Greedy word wrap to ``max_width`` pixels, at most MAX_CAPTION_LINES lines."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > MAX_CAPTION_LINES:
        lines = [*lines[: MAX_CAPTION_LINES - 1], " ".join(lines[MAX_CAPTION_LINES - 1 :])]
    return lines


def draw_result(
    rgb: np.ndarray,
    objects: list[GroundedObject],
    caption: str = "",
    status_text: str = "",
    source_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """A new RGB array with each object's boxes and the caption in a band on top
    (``status_text`` is shown after the caption unless it is ``ok``). ``source_size``
    (width, height): the boxes are in the pixels of a frame that ``rgb`` is a reduced decode
    of, and are scaled onto ``rgb``."""
    img = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")
    if source_size is not None and tuple(source_size) != img.size:
        objects = _scaled(objects, img.size[0] / source_size[0], img.size[1] / source_size[1])
    draw = ImageDraw.Draw(img)
    width = max(2, round(min(img.size) / 150))
    label_font = _font(max(10, img.size[1] // 30))
    for i, obj in enumerate(objects):
        visible_colour, amodal_colour = PALETTE[i % len(PALETTE)]
        if obj.visible is not None and _finite(obj.visible):
            x1, y1, x2, y2 = _clipped(obj.visible, img.size, width)
            draw.rectangle([x1, y1, x2, y2], outline=visible_colour, width=width)
            if obj.label:
                at = (x1 + width + 1, y1 + width + 1)
                left, top, right, bottom = draw.textbbox(at, obj.label, font=label_font)
                draw.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill=CAPTION_BG)
                draw.text(at, obj.label, fill=visible_colour, font=label_font)
        # Dashed on top of the solid box: shared edges then show both colours.
        if obj.amodal is not None and obj.amodal_predicted and _finite(obj.amodal):
            _dashed_box(draw, obj.amodal, img.size, amodal_colour, width)
    text = caption if not status_text or status_text == "ok" else f"{caption}  [{status_text}]"
    if text.strip():
        font = _font(max(11, img.size[1] // 22))
        line_height = font.getbbox("Ag")[3] + 2
        lines = _wrap(text, font, img.size[0] - 8)
        draw.rectangle([0, 0, img.size[0], line_height * len(lines) + 6], fill=CAPTION_BG)
        for n, line in enumerate(lines):
            draw.text((4, 3 + n * line_height), line, fill=CAPTION_FG, font=font)
    return np.asarray(img)


def _scaled(objects: list[GroundedObject], sx: float, sy: float) -> list[GroundedObject]:
    def scale(box: Box | None) -> Box | None:
        return None if box is None else scale_box(box, sx, sy)

    return [replace(o, visible=scale(o.visible), amodal=scale(o.amodal)) for o in objects]


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write ``rgb`` as PNG, creating missing parent folders."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, format="PNG")
    return out
