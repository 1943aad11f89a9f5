"""The EGM authors' scoring rules, reimplemented from their evaluation script (zgq1879/EGM
``verl/scripts/vllm_infer.py``, the same file under ``verl-internvl/``), for
``egm-eval --protocol authors``. Kept as they are, including where the project's own parser
(:mod:`egm_ros.core.parsing`) is stricter:

- the box is the first ``"bbox_2d": [x1, y1, x2, y2]`` anywhere in the output, the reasoning
  included; else the first ``[a, b, c, d]``; else the last four numbers of the text;
- coordinates are 0..1000 whatever the family (their ``box_remap=scale`` for every checkpoint):
  clamped to 0..1000, scaled to the image, rounded to whole pixels (Python's ``round``, half
  to even), clamped to ``[0, width-1]`` and ``[0, height-1]``; a box left with zero width or
  height is widened to one pixel where the image allows it; reversed corners are not swapped;
- IoU on those integer boxes (no +1), 0 when no box was found.
"""

from __future__ import annotations

import math
import re

# Their number pattern, character for character.
_NUM = r"([+-]?(?:\d*\.\d+|\d+)(?:[eE][+-]?\d+)?)"
_BBOX_2D = re.compile(
    rf'"bbox_2d"\s*:\s*\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\]', re.S
)
_QUAD = re.compile(rf"\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\]", re.S)
_NUMBERS = re.compile(r"[+-]?(?:\d*\.\d+|\d+)(?:[eE][+-]?\d+)?", re.S)


def authors_box(text: str) -> list[float] | None:
    """The four numbers their script takes from a completion, or None."""
    for pattern in (_BBOX_2D, _QUAD):
        match = pattern.search(text)
        if match:
            return [float(match.group(i)) for i in range(1, 5)]
    numbers = _NUMBERS.findall(text)
    return [float(v) for v in numbers[-4:]] if len(numbers) >= 4 else None


def scale_bbox(bbox: list[float], width: int, height: int) -> list[float]:
    """Their ``scale_bbox``: 0..1000 coordinates to integer pixels of a width x height image."""
    cleaned = [min(max(v if math.isfinite(v) else 0.0, 0.0), 1000.0) for v in map(float, bbox)]
    x1, y1, x2, y2 = cleaned
    x1, x2 = round(x1 * width / 1000.0), round(x2 * width / 1000.0)
    y1, y2 = round(y1 * height / 1000.0), round(y2 * height / 1000.0)
    x1, x2 = max(0, min(x1, width - 1)), max(0, min(x2, width - 1))
    y1, y2 = max(0, min(y1, height - 1)), max(0, min(y2, height - 1))
    if x1 == x2 and width > 1:
        x2 = min(x1 + 1, width - 1)
    if y1 == y2 and height > 1:
        y2 = min(y1 + 1, height - 1)
    return [float(x1), float(y1), float(x2), float(y2)]


def authors_iou(box: list[float] | None, truth: list[float]) -> float:
    """Their ``compute_iou``: a reversed box has no area; 0 without a box."""
    if box is None:
        return 0.0
    inter_w = max(0, min(box[2], truth[2]) - max(box[0], truth[0]))
    inter_h = max(0, min(box[3], truth[3]) - max(box[1], truth[1]))
    inter = inter_w * inter_h
    area_a = max(0, box[2] - box[0]) * max(0, box[3] - box[1])
    area_b = max(0, truth[2] - truth[0]) * max(0, truth[3] - truth[1])
    denom = area_a + area_b - inter
    return inter / denom if denom != 0 else 0.0
