"""Parse whatever a grounding model wrote into pixel boxes, or a clean status. Never raises.

EGM checkpoints are thinking models: reasoning, ``</think>``, then the answer (the opening
``<think>`` is usually in the prompt's chat template, not the output). Only the answer is
parsed, never numbers from the reasoning. Rules follow the EGM authors' evaluation script
(first ``"bbox_2d": [x1, y1, x2, y2]``, else the first ``[a, b, c, d]``, else the last four
numbers), made stricter where the authors' fallbacks would turn prose into a box.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from egm_ros.core.families import Family, is_relative
from egm_ros.core.geometry import clip_box, make_box
from egm_ros.core.types import Box, Status

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER = re.compile(_NUM)
_QUAD = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_BBOX_KEY = re.compile(r"[\"'](?:bbox_2d|bbox)[\"']\s*:\s*")
_LABEL = re.compile(r"[\"']label[\"']\s*:\s*[\"']((?:[^\"'\\]|\\.)*)[\"']")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_INTERN_BOX = re.compile(r"(?:<ref>(.*?)</ref>\s*)?<box>(.*?)</box>", re.DOTALL)
#: Coordinates beyond this are nonsense whatever the space (0..1000 or pixels of 8K frames).
_ABSURD = 1e5
#: The authors' "last four numbers" fallback is used only for answers that are mostly numbers.
_MAX_PROSE_LETTERS = 12


@dataclass
class ParsedAnswer:
    status: Status
    boxes: list[tuple[Box, str]] = field(default_factory=list)  # source pixels, label
    reasoning: str = ""
    answer: str = ""
    message: str = ""


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, answer). Without any think tag the whole text is the answer; an opened
    ``<think>`` without ``</think>`` leaves the answer empty (truncated reasoning)."""
    close = text.find(THINK_CLOSE)
    if close >= 0:
        reasoning = text[:close]
        opened = reasoning.find(THINK_OPEN)
        if opened >= 0:
            reasoning = reasoning[opened + len(THINK_OPEN) :]
        return reasoning.strip(), text[close + len(THINK_CLOSE) :].strip()
    opened = text.find(THINK_OPEN)
    if opened >= 0:
        return text[opened + len(THINK_OPEN) :].strip(), ""
    return "", text.strip()


def parse_answer(
    text: str,
    family: Family,
    image_size: tuple[int, int],
    *,
    model_input_size: tuple[int, int] | None = None,
    clip: bool = True,
) -> ParsedAnswer:
    """Boxes in pixels of the ``image_size`` = (width, height) source image.

    ``model_input_size`` is the (width, height) the model saw, needed for ``qwen2_5_vl``
    (pixel answers); ``clip`` (visible boxes) clips to the image and drops boxes left with no
    area; without it (amodal boxes) a box may extend past the border, within one image size."""
    try:
        return _parse(
            text if isinstance(text, str) else str(text),
            Family(family),
            image_size,
            model_input_size,
            clip,
        )
    except Exception as err:  # noqa: BLE001 - model output must never raise
        return ParsedAnswer(Status.MALFORMED_OUTPUT, message=f"unparsable answer ({err})")


def _parse(
    text: str,
    family: Family,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None,
    clip: bool,
) -> ParsedAnswer:
    reasoning, answer = split_reasoning(text)
    result = ParsedAnswer(Status.MALFORMED_OUTPUT, reasoning=reasoning, answer=answer)
    if not answer:
        result.message = (
            "output ended inside the reasoning (no </think>): raise max_new_tokens"
            if THINK_OPEN in text or reasoning
            else "empty answer"
        )
        return result
    raw = _intern_boxes(answer) if family is Family.INTERNVL3 else _qwen_boxes(answer)
    if not raw:
        raw = _fallback_boxes(answer)
    width, height = image_size
    if is_relative(family):
        sx, sy = width / 1000.0, height / 1000.0
    else:
        in_w, in_h = model_input_size or image_size
        sx, sy = width / in_w, height / in_h
    dropped = 0
    for coords, label in raw:
        if not all(math.isfinite(v) and abs(v) < _ABSURD for v in coords):
            dropped += 1
            continue
        box = make_box(coords[0] * sx, coords[1] * sy, coords[2] * sx, coords[3] * sy)
        box = clip_box(box, width, height) if clip else _bound(box, width, height)
        if box.width <= 0 or box.height <= 0:
            dropped += 1
            continue
        result.boxes.append((box, label.strip()))
    if result.boxes:
        result.status = Status.OK
    elif dropped:
        result.status = Status.NOT_FOUND
        result.message = "the model's box lies outside the image or has no area"
    elif _looks_truncated(answer, family):
        result.message = f"truncated or malformed answer: {answer[-80:]!r}"
    else:
        result.status = Status.NOT_FOUND
        result.message = "the model found no such target"
    return result


def _bound(box: Box, width: float, height: float) -> Box:
    """Amodal boxes may leave the frame, but not by more than one image size."""

    def lim(v: float, size: float) -> float:
        return min(max(v, -size), 2.0 * size)

    return Box(lim(box.x1, width), lim(box.y1, height), lim(box.x2, width), lim(box.y2, height))


def _qwen_boxes(answer: str) -> list[tuple[list[float], str]]:
    """``bbox_2d`` entries: from JSON where it parses, else by pattern."""
    for block in _FENCE.findall(answer) or [answer]:
        parsed = _json_boxes(block)
        if parsed:
            return parsed
    boxes = []
    for key in _BBOX_KEY.finditer(answer):
        quad = _QUAD.match(answer, key.end())
        if quad is None:
            continue
        # The label of this object only: between its "{" and its "}".
        obj_start = answer.rfind("{", 0, key.start())
        obj_end = answer.find("}", quad.end())
        obj_end = len(answer) if obj_end < 0 else obj_end
        label = _LABEL.search(answer, max(0, obj_start), obj_end)
        name = label.group(1) if label else ""
        boxes.append(([float(v) for v in quad.groups()], name))
    return boxes


def _json_boxes(block: str) -> list[tuple[list[float], str]]:
    start = min((i for i in (block.find("["), block.find("{")) if i >= 0), default=-1)
    if start < 0:
        return []
    end = max(block.rfind("]"), block.rfind("}"))
    try:
        data = json.loads(block[start : end + 1])
    except (ValueError, RecursionError):
        return []
    items = data if isinstance(data, list) else [data]
    boxes = []
    for item in items:
        if isinstance(item, dict):
            coords = item.get("bbox_2d", item.get("bbox"))
            label = item.get("label", "")
        else:
            coords, label = item, ""
        if (
            isinstance(coords, list)
            and len(coords) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in coords)
        ):
            boxes.append(([float(v) for v in coords], str(label)))
    return boxes


def _intern_boxes(answer: str) -> list[tuple[list[float], str]]:
    boxes = []
    for match in _INTERN_BOX.finditer(answer):
        label = match.group(1) or ""
        for quad in _QUAD.finditer(match.group(2)):
            boxes.append(([float(v) for v in quad.groups()], label))
    return boxes


def _fallback_boxes(answer: str) -> list[tuple[list[float], str]]:
    """The authors' fallbacks: the first ``[a, b, c, d]``, else the last four numbers, the
    latter only when the answer is essentially numbers (not prose that mentions some)."""
    quad = _QUAD.search(answer)
    if quad is not None:
        return [([float(v) for v in quad.groups()], "")]
    numbers = _NUMBER.findall(answer)
    letters = sum(c.isalpha() for c in _NUMBER.sub("", answer))
    if len(numbers) >= 4 and letters <= _MAX_PROSE_LETTERS:
        return [([float(v) for v in numbers[-4:]], "")]
    return []


def _looks_truncated(answer: str, family: Family) -> bool:
    """An answer that started a box but did not finish it (or is not text at all)."""
    if family is Family.INTERNVL3 and "<box>" in answer:
        return True
    if "bbox" in answer or answer.count("```") % 2 == 1:
        return True
    if answer.count("[") != answer.count("]") or answer.count("{") != answer.count("}"):
        return True
    printable = sum(c.isprintable() or c.isspace() for c in answer)
    return printable < 0.9 * len(answer)


def answer_complete(text: str, family: Family, thinking: bool = True) -> bool:
    """True once ``text`` (the output so far) holds a complete answer, so streaming can stop.

    With ``thinking`` (EGM checkpoints) nothing counts before ``</think>``, so a box-like
    string in the reasoning never stops generation. Cheap: a few ``str.find`` per call."""
    close = text.find(THINK_CLOSE)
    if close >= 0:
        answer = text[close + len(THINK_CLOSE) :]
    elif thinking or THINK_OPEN in text:
        return False
    else:
        answer = text
    if family is Family.INTERNVL3:
        return "</box>" in answer
    fence = answer.find("```")
    if fence >= 0:
        return answer.find("```", fence + 3) >= 0
    start = min((i for i in (answer.find("["), answer.find("{")) if i >= 0), default=-1)
    if start < 0:
        return False
    depth = 0
    for ch in answer[start:]:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return True
    return False
