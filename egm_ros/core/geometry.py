"""Box arithmetic on :class:`~egm_ros.core.types.Box` (corner boxes in pixels)."""

from __future__ import annotations

from egm_ros.core.types import Box


def make_box(x1: float, y1: float, x2: float, y2: float) -> Box:
    """A box from two corners in any order (models sometimes write them reversed)."""
    return Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def iou(a: Box, b: Box) -> float:
    """Intersection over union; 0 when either box has no area."""
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def clip_box(box: Box, width: float, height: float) -> Box:
    """The part of ``box`` inside a ``width`` x ``height`` image (may have zero area)."""
    x1 = min(max(box.x1, 0.0), width)
    y1 = min(max(box.y1, 0.0), height)
    x2 = min(max(box.x2, 0.0), width)
    y2 = min(max(box.y2, 0.0), height)
    return Box(x1, y1, x2, y2)


def scale_box(box: Box, sx: float, sy: float) -> Box:
    """``box`` in an image resized by ``sx`` x ``sy`` (e.g. model input back to source)."""
    return Box(box.x1 * sx, box.y1 * sy, box.x2 * sx, box.y2 * sy)


def relative_to_pixels(box: Box, width: float, height: float) -> Box:
    """0..1000 relative coordinates (Qwen3-VL, InternVL) to pixels of a width x height image.
    Multiplies before dividing, so integer answers on integer sizes map exactly."""
    return Box(
        box.x1 * width / 1000.0,
        box.y1 * height / 1000.0,
        box.x2 * width / 1000.0,
        box.y2 * height / 1000.0,
    )


def box_to_center_size(box: Box) -> tuple[float, float, float, float]:
    """(cx, cy, w, h): the layout of the ROS message (vision_msgs style)."""
    cx, cy = box.center
    return cx, cy, box.width, box.height


def center_size_to_box(cx: float, cy: float, w: float, h: float) -> Box:
    """Inverse of :func:`box_to_center_size`; a negative size gives the same ordered box."""
    return make_box(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
