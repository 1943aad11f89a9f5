"""Draw grounding results: visible box solid, amodal box dashed, the command as a caption.
Used by ``egm-ground --out``, the node's ``debug_image`` and the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from egm_ros.core.types import Box, GroundedObject

VISIBLE_COLOUR = (0, 220, 0)
AMODAL_COLOUR = (255, 140, 0)
CAPTION_BG = (0, 0, 0)
CAPTION_FG = (255, 255, 255)
DASH, GAP = 8, 6


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _dashed_line(
    draw: ImageDraw.ImageDraw,
    start: tuple[float, float],
    end: tuple[float, float],
    colour,
    width: int,
) -> None:
    (x0, y0), (x1, y1) = start, end
    length = float(np.hypot(x1 - x0, y1 - y0))
    if length == 0:
        return
    dx, dy = (x1 - x0) / length, (y1 - y0) / length
    pos = 0.0
    while pos < length:
        stop = min(pos + DASH, length)
        draw.line(
            [(x0 + dx * pos, y0 + dy * pos), (x0 + dx * stop, y0 + dy * stop)],
            fill=colour,
            width=width,
        )
        pos = stop + GAP


def _dashed_box(draw: ImageDraw.ImageDraw, box: Box, colour, width: int) -> None:
    corners = [(box.x1, box.y1), (box.x2, box.y1), (box.x2, box.y2), (box.x1, box.y2)]
    for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
        _dashed_line(draw, a, b, colour, width)


def draw_result(
    rgb: np.ndarray, objects: list[GroundedObject], caption: str = "", status_text: str = ""
) -> np.ndarray:
    """A new RGB array with the boxes and a caption band on top."""
    img = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")
    draw = ImageDraw.Draw(img)
    width = max(2, round(min(img.size) / 150))
    for obj in objects:
        if obj.amodal is not None and obj.amodal_predicted:
            _dashed_box(draw, obj.amodal, AMODAL_COLOUR, width)
        if obj.visible is not None:
            b = obj.visible
            draw.rectangle([b.x1, b.y1, b.x2, b.y2], outline=VISIBLE_COLOUR, width=width)
            if obj.label:
                draw.text(
                    (b.x1 + width + 1, b.y1 + width + 1),
                    obj.label,
                    fill=VISIBLE_COLOUR,
                    font=_font(max(10, img.size[1] // 30)),
                )
    text = caption if not status_text or status_text == "ok" else f"{caption}  [{status_text}]"
    if text:
        font = _font(max(11, img.size[1] // 22))
        band = font.getbbox("Ag")[3] + 6
        draw.rectangle([0, 0, img.size[0], band], fill=CAPTION_BG)
        draw.text((4, 3), text, fill=CAPTION_FG, font=font)
    return np.asarray(img)


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, format="PNG")
    return out
