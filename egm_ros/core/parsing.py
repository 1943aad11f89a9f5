"""Parse whatever a grounding model wrote into pixel boxes, or a clean status. Never raises.

EGM checkpoints are thinking models: reasoning, ``</think>``, then the answer (the opening
``<think>`` is usually in the prompt's chat template, not the output). Only the answer is
parsed, never numbers from the reasoning. Rules follow the EGM authors' evaluation script
(first ``"bbox_2d": [x1, y1, x2, y2]``, else the first ``[a, b, c, d]``, else the last four
numbers), made stricter where the authors' fallbacks would turn prose into a box.

Statuses: ``ok`` with at least one box; ``not_found`` for a complete answer that holds no box
(prose, ``[]``); ``malformed_output`` for truncated output, garbage, or numbers that make no
box (non-finite, absurd, no area inside the image).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from egm_ros.core.families import CoordinateSpace, Family, coordinate_space
from egm_ros.core.geometry import clip_box, make_box
from egm_ros.core.types import Box, Status

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
#: One number. The alternatives cannot match the same digits two ways, so a long run of
#: digits costs linear time, not quadratic backtracking.
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER = re.compile(_NUM)
_QUAD = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_BBOX_KEY = re.compile(r"[\"'](?:bbox_2d|bbox)[\"']\s*:\s*")
_LABEL = re.compile(r"[\"']label[\"']\s*:\s*[\"']((?:[^\"'\\]|\\.)*)[\"']")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_INTERN_BOX = re.compile(r"(?:<ref>(.*?)</ref>\s*)?<box>(.*?)</box>", re.DOTALL)
#: Structure for answer_complete's scan: escapes, quotes and brackets (everything else is
#: skipped at C speed).
_JSON_TOKEN = re.compile(r'\\.|["\[\]{}]', re.DOTALL)
#: Numbers more than this many frames outside the model's frame are absurd, not a box.
_SANE_FRAMES = 10
#: Amodal boxes may leave the frame, but by at most this many image sizes.
_AMODAL_MARGIN = 1.0
#: The authors' "last four numbers" fallback is used only for answers that are mostly numbers.
_MAX_PROSE_LETTERS = 12

_Candidate = tuple[object, str]  # (what the model wrote for the box, label)


@dataclass
class ParsedAnswer:
    status: Status
    boxes: list[tuple[Box, str]] = field(default_factory=list)  # source pixels, label
    reasoning: str = ""
    answer: str = ""
    message: str = ""


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, answer), both stripped. Without any think tag the whole text is the answer;
    an opened ``<think>`` without ``</think>`` is truncated reasoning with an empty answer."""
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
    thinking: bool = False,
) -> ParsedAnswer:
    """Boxes in pixels of the ``image_size`` = (width, height) source image.

    ``model_input_size`` is the (width, height) the model saw, used by ``qwen2_5_vl`` (pixel
    answers; the source size when ``None``). ``clip`` (visible boxes) clips to the image and
    drops boxes left with no area; without it (amodal boxes) a box may extend past the border
    by up to one image size. ``thinking``: the chat template opened a think block, so output
    without ``</think>`` is truncated reasoning, never an answer."""
    try:
        return _parse(
            text if isinstance(text, str) else str(text),
            Family(family),
            image_size,
            model_input_size,
            clip,
            thinking,
        )
    except Exception as err:  # noqa: BLE001 - model output must never raise
        return ParsedAnswer(Status.MALFORMED_OUTPUT, message=f"unparsable answer ({err!r})")


def _parse(
    text: str,
    family: Family,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None,
    clip: bool,
    thinking: bool,
) -> ParsedAnswer:
    reasoning, answer = split_reasoning(text)
    result = ParsedAnswer(Status.MALFORMED_OUTPUT, reasoning=reasoning, answer=answer)
    if THINK_CLOSE not in text and (thinking or THINK_OPEN in text):
        result.message = "output ended inside the reasoning (no </think>): raise max_new_tokens"
        return result
    if not answer:
        result.message = "empty answer"
        return result
    if sum(c.isprintable() or c.isspace() for c in answer) < 0.9 * len(answer):
        result.message = "the answer is not text"
        return result

    found = _intern_boxes(answer) if family is Family.INTERNVL3 else _qwen_boxes(answer)
    found = found or _fallback_boxes(answer)
    width, height = image_size
    if coordinate_space(family) is CoordinateSpace.RELATIVE_1000:
        frame = (1000.0, 1000.0)
    else:
        frame = model_input_size or image_size
    problems: list[str] = []
    for values, label in found:
        box = _to_box(values, frame, (width, height), clip, problems)
        if box is not None:
            result.boxes.append((box, label.strip()))

    if result.boxes:
        result.status = Status.OK
        if problems:
            result.message = f"ignored {len(problems)} box(es): {problems[0]}"
    elif _looks_truncated(answer, family):
        result.message = f"truncated answer: ...{answer[-60:]!r}"
    elif problems:
        result.message = problems[0]
    else:
        result.status = Status.NOT_FOUND
        result.message = "the model found no such target"
    return result


def _to_box(
    values: object,
    frame: tuple[float, float],
    image: tuple[float, float],
    clip: bool,
    problems: list[str],
) -> Box | None:
    """One candidate as a source-pixel box, or ``None`` with the reason added to ``problems``."""
    if not (
        isinstance(values, list)
        and len(values) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ):
        problems.append(f"not a box of four numbers: {str(values)[:60]}")
        return None
    fw, fh = frame
    limits = zip(values, (fw, fh, fw, fh), strict=True)
    # Chained comparisons reject NaN, infinities and huge integers without converting them.
    if not all(-_SANE_FRAMES * s <= v <= (1 + _SANE_FRAMES) * s for v, s in limits):
        problems.append(f"coordinates out of any sane range: {str(values)[:60]}")
        return None
    width, height = image
    x1, y1, x2, y2 = (float(v) for v in values)
    # Multiply before dividing: integer answers on integer sizes map exactly.
    box = make_box(x1 * width / fw, y1 * height / fh, x2 * width / fw, y2 * height / fh)
    box = clip_box(box, width, height) if clip else _bound(box, width, height)
    if box.width <= 0 or box.height <= 0:
        where = "inside the image" if clip else "near the image"
        problems.append(f"box has no area {where}: {values}")
        return None
    return box


def _bound(box: Box, width: float, height: float) -> Box:
    """Amodal boxes may leave the frame, but not by more than ``_AMODAL_MARGIN`` image sizes."""
    mx, my = _AMODAL_MARGIN * width, _AMODAL_MARGIN * height
    return Box(
        min(max(box.x1, -mx), width + mx),
        min(max(box.y1, -my), height + my),
        min(max(box.x2, -mx), width + mx),
        min(max(box.y2, -my), height + my),
    )


def _qwen_boxes(answer: str) -> list[_Candidate]:
    """``bbox_2d`` entries: from JSON where it parses, else by pattern."""
    for block in _FENCE.findall(answer) or [answer]:
        found = _json_boxes(block)
        if found:
            return found
    found = []
    for key in _BBOX_KEY.finditer(answer):
        quad = _QUAD.match(answer, key.end())
        if quad is None:
            if answer.startswith("[", key.end()) and not answer.startswith("[]", key.end()):
                end = answer.find("]", key.end())
                found.append((answer[key.end() : end + 1 if end >= 0 else None], ""))
            continue
        # The label of this object only: between its "{" and its "}".
        obj_start = answer.rfind("{", 0, key.start())
        obj_end = answer.find("}", quad.end())
        label = _LABEL.search(answer, max(0, obj_start), len(answer) if obj_end < 0 else obj_end)
        found.append(([float(v) for v in quad.groups()], label.group(1) if label else ""))
    return found


def _json_boxes(block: str) -> list[_Candidate]:
    """Candidates from a block that is one JSON value: a ``bbox_2d`` object, a list of them,
    or a list of bare ``[x1, y1, x2, y2]`` lists."""
    start = min((i for i in (block.find("["), block.find("{")) if i >= 0), default=-1)
    if start < 0:
        return []
    end = max(block.rfind("]"), block.rfind("}"))
    try:
        data = json.loads(block[start : end + 1])
    except (ValueError, RecursionError):
        return []
    found: list[_Candidate] = []
    for item in data if isinstance(data, list) else [data]:
        if isinstance(item, dict):
            coords = item.get("bbox_2d", item.get("bbox"))
            if coords is not None and coords != []:
                found.append((coords, str(item.get("label", ""))))
        elif isinstance(item, list) and len(item) == 4:
            found.append((item, ""))
    return found


def _intern_boxes(answer: str) -> list[_Candidate]:
    found: list[_Candidate] = []
    for match in _INTERN_BOX.finditer(answer):
        label, content = match.group(1) or "", match.group(2)
        quads: list[object] = [[float(v) for v in q.groups()] for q in _QUAD.finditer(content)]
        found.extend((quad, label) for quad in quads or [content])
    return found


def _fallback_boxes(answer: str) -> list[_Candidate]:
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
    """An answer that opened a box, a list, an object or a fence and did not close it."""
    if family is Family.INTERNVL3 and answer.count("<box>") > answer.count("</box>"):
        return True
    if answer.count("```") % 2 == 1:
        return True
    return answer.count("[") > answer.count("]") or answer.count("{") > answer.count("}")


def answer_complete(text: str, family: Family, thinking: bool = True) -> bool:
    """True once ``text`` (the output so far) holds a complete answer, so streaming can stop.

    Nothing counts before ``</think>`` when the output opened a think block or ``thinking``
    says the chat template did (EGM checkpoints), so a box in the reasoning never stops
    generation. Complete means: internvl3, a ``</box>``; qwen, a closed fenced block or a
    closed top-level JSON value that mentions ``bbox_2d``. One linear pass per call."""
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
    if fence >= 0 and answer.find("```", fence + 3) >= 0:
        return True
    return _closed_json_with_box(answer)


@dataclass(frozen=True)
class AnswerComplete:
    """:func:`answer_complete` for one family as an engine's stop check. A plain object, not a
    closure, so it pickles: an engine in a worker process evaluates it there, on every token,
    without a round trip to the caller."""

    family: Family
    thinking: bool = True

    def __call__(self, text: str) -> bool:
        return answer_complete(text, self.family, self.thinking)


def _closed_json_with_box(answer: str) -> bool:
    """Whether a top-level ``[...]``/``{...}`` that mentions ``bbox`` has closed. Quotes count
    only inside brackets, so an apostrophe or inch mark in prose cannot derail the scan."""
    depth, start, in_string = 0, -1, False
    for token in _JSON_TOKEN.finditer(answer):
        ch = token.group()
        if in_string:
            in_string = ch != '"'
        elif ch in "[{":
            if depth == 0:
                start = token.start()
            depth += 1
        elif ch in "]}":
            if depth == 0:
                continue  # a stray closer in prose
            depth -= 1
            if depth == 0 and "bbox" in answer[start : token.end()]:
                return True
        elif ch == '"' and depth > 0:
            in_string = True
    return False
