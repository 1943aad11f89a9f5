"""The answer parser: a table of real-looking model outputs with exact expected pixel boxes
and statuses, and property-based tests that it never raises, never returns a box outside the
image, round-trips valid answers, and that early stop never fires inside the reasoning."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egm_ros.core.families import Family, model_input_size
from egm_ros.core.parsing import AnswerComplete, answer_complete, parse_answer, split_reasoning
from egm_ros.core.types import Status

W, H = 1000, 500  # source image: 0..1000 relative x maps 1:1, y maps 1:2
Q3, Q25, IV = Family.QWEN3_VL, Family.QWEN2_5_VL, Family.INTERNVL3
EGM_REASONING = (
    "The image shows a table with two mugs. The red mug is on the left, partly behind the "
    'laptop at [420, 300, 700, 800] ({"bbox_2d": [1, 2, 3, 4]}); the blue one is on the right.'
)

TABLE = [
    # (id, family, text, kwargs, status, [(x1, y1, x2, y2, label)])
    (
        "egm-fenced",
        Q3,
        f'{EGM_REASONING}\n</think>\n\n```json\n[\n\t{{"bbox_2d": [100, 200, 300, 600], '
        f'"label": "red mug"}}\n]\n```',
        {"thinking": True},
        Status.OK,
        [(100, 100, 300, 300, "red mug")],
    ),
    (
        "think-open-tag",
        Q3,
        '<think>\nleft mug\n</think>\n\n```json\n[{"bbox_2d": [0, 0, 1000, 1000]}]\n```',
        {},
        Status.OK,
        [(0, 0, 1000, 500, "")],
    ),
    (
        "bare-json-object",
        Q3,
        '{"bbox_2d": [10, 20, 30, 40], "label": "cup"}',
        {},
        Status.OK,
        [(10, 10, 30, 20, "cup")],
    ),
    (
        "several-boxes",
        Q3,
        '</think>```json\n[{"bbox_2d": [0, 0, 100, 100], "label": "a"}, '
        '{"bbox_2d": [500, 500, 600, 600], "label": "b"}]\n```',
        {},
        Status.OK,
        [(0, 0, 100, 50, "a"), (500, 250, 600, 300, "b")],
    ),
    (
        "json-lines-without-list",
        Q3,
        '</think>{"bbox_2d": [0, 0, 100, 100], "label": "a"}\n'
        '{"bbox_2d": [500, 500, 600, 600], "label": "b"}',
        {},
        Status.OK,
        [(0, 0, 100, 50, "a"), (500, 250, 600, 300, "b")],
    ),
    (
        "label-with-brackets",
        Q3,
        '</think>[{"bbox_2d": [100, 200, 300, 600], "label": "mug [red] {left}"}]',
        {},
        Status.OK,
        [(100, 100, 300, 300, "mug [red] {left}")],
    ),
    (
        "reversed-corners",
        Q3,
        '</think>[{"bbox_2d": [300, 600, 100, 200]}]',
        {},
        Status.OK,
        [(100, 100, 300, 300, "")],
    ),
    (
        "out-of-range-clipped",
        Q3,
        '</think>[{"bbox_2d": [-50, 900, 1200, 1100]}]',
        {},
        Status.OK,
        [(0, 450, 1000, 500, "")],
    ),
    (
        "out-of-range-amodal",
        Q3,
        '</think>[{"bbox_2d": [-50, 900, 1200, 1100]}]',
        {"clip": False},
        Status.OK,
        [(-50, 450, 1200, 550, "")],
    ),
    (
        "amodal-bounded-to-one-image-size",
        Q3,
        '</think>[{"bbox_2d": [-5000, 0, 5000, 100]}]',
        {"clip": False},
        Status.OK,
        [(-1000, 0, 2000, 50, "")],
    ),
    (
        "floats",
        Q3,
        '</think>```json\n[{"bbox_2d": [100.5, 200.25, 300.0, 600.75]}]\n```',
        {},
        Status.OK,
        [(100.5, 100.125, 300, 300.375, "")],
    ),
    (
        "json-with-bad-quotes-regex-fallback",
        Q3,
        "</think>```json\n[{'bbox_2d': [1, 2, 3, 4]}, {\"bbox_2d\": [100, 100, 200, 200], "
        '"label": "mug"}]\n```',
        {},
        Status.OK,
        [(1, 1, 3, 2, ""), (100, 50, 200, 100, "mug")],
    ),
    (
        "one-good-one-absurd",
        Q3,
        '</think>[{"bbox_2d": [0, 0, 100, 100]}, {"bbox_2d": [0, 0, 1e9, 100]}]',
        {},
        Status.OK,
        [(0, 0, 100, 50, "")],
    ),
    (
        "authors-first-quad",
        Q3,
        "</think>The box is [100, 100, 500, 500].",
        {},
        Status.OK,
        [(100, 50, 500, 250, "")],
    ),
    (
        "authors-last-four-numbers",
        Q3,
        "</think>(10, 20), (30, 40)",
        {},
        Status.OK,
        [(10, 10, 30, 20, "")],
    ),
    (
        "qwen2-vl-box-tokens-decoded",
        Q3,
        "the mug(100,200),(300,600)",
        {},
        Status.OK,
        [(100, 100, 300, 300, "")],
    ),
    (
        "qwen25-model-pixels",
        Q25,
        '```json\n[{"bbox_2d": [100.8, 50.4, 504, 252], "label": "red mug"}]\n```',
        {"model_input_size": (1008, 504)},
        Status.OK,
        [(100, 50, 500, 250, "red mug")],
    ),
    (
        "qwen25-no-resize-given",
        Q25,
        '[{"bbox_2d": [10, 20, 30, 40]}]',
        {},
        Status.OK,
        [(10, 20, 30, 40, "")],
    ),
    (
        "internvl",
        IV,
        "<ref>the mug</ref><box>[[100, 200, 300, 600]]</box>",
        {},
        Status.OK,
        [(100, 100, 300, 300, "the mug")],
    ),
    (
        "internvl-two-in-one",
        IV,
        "<ref>mugs</ref><box>[[0, 0, 10, 10], [20, 20, 30, 30]]</box>",
        {},
        Status.OK,
        [(0, 0, 10, 5, "mugs"), (20, 10, 30, 15, "mugs")],
    ),
    (
        "internvl-without-ref",
        IV,
        "<box>[[500, 0, 1000, 1000]]</box>",
        {},
        Status.OK,
        [(500, 0, 1000, 500, "")],
    ),
    (
        "internvl-after-think",
        IV,
        f"{EGM_REASONING}</think><ref>mug</ref><box>[[100, 200, 300, 600]]</box>",
        {"thinking": True},
        Status.OK,
        [(100, 100, 300, 300, "mug")],
    ),
    (
        "empty-list",
        Q3,
        "There is no such object.</think>\n```json\n[]\n```",
        {},
        Status.NOT_FOUND,
        [],
    ),
    ("null-box", Q3, '</think>{"bbox_2d": null}', {}, Status.NOT_FOUND, []),
    ("prose", Q3, "</think>I cannot find a mug in this image.", {}, Status.NOT_FOUND, []),
    ("not-present", IV, "</think>The mug is not present.", {}, Status.NOT_FOUND, []),
    (
        "prose-with-few-numbers",
        Q3,
        "</think>There are 2 mugs and 3 cups on 1 table.",
        {},
        Status.NOT_FOUND,
        [],
    ),
    (
        "prose-with-brackets",
        Q3,
        "</think>The mug [the red one] is not in view {sorry}.",
        {},
        Status.NOT_FOUND,
        [],
    ),
    (
        "zero-area-after-clip",
        Q3,
        '</think>[{"bbox_2d": [1100, 100, 1200, 200]}]',
        {},
        Status.MALFORMED_OUTPUT,
        [],
    ),
    (
        "zero-area",
        Q3,
        '</think>[{"bbox_2d": [100, 100, 100, 200]}]',
        {},
        Status.MALFORMED_OUTPUT,
        [],
    ),
    ("three-numbers", Q3, '</think>[{"bbox_2d": [1, 2, 3]}]', {}, Status.MALFORMED_OUTPUT, []),
    ("absurd", Q3, '</think>[{"bbox_2d": [0, 0, 1e9, 100]}]', {}, Status.MALFORMED_OUTPUT, []),
    (
        "huge-integer",
        Q3,
        f'</think>{{"bbox_2d": [0, 0, {10**400}, 1]}}',
        {},
        Status.MALFORMED_OUTPUT,
        [],
    ),
    (
        "nan-and-inf",
        Q3,
        '</think>[{"bbox_2d": [NaN, 1, Infinity, 2]}]',
        {},
        Status.MALFORMED_OUTPUT,
        [],
    ),
    (
        "truncated-json",
        Q3,
        f'{EGM_REASONING}</think>```json\n[{{"bbox_2d": [100, 2',
        {},
        Status.MALFORMED_OUTPUT,
        [],
    ),
    (
        "truncated-think",
        Q3,
        "<think>The red mug is left of the laptop at [1, 2, 3, 4] and",
        {},
        Status.MALFORMED_OUTPUT,
        [],
    ),
    (
        "truncated-think-opened-by-template",
        Q3,
        'The red mug is left of the laptop {"bbox_2d": [1, 2, 3, 4]} and',
        {"thinking": True},
        Status.MALFORMED_OUTPUT,
        [],
    ),
    ("nothing-after-think", Q3, "reasoning only</think>", {}, Status.MALFORMED_OUTPUT, []),
    ("internvl-unclosed", IV, "<ref>mug</ref><box>[[100, 200, 3", {}, Status.MALFORMED_OUTPUT, []),
    ("internvl-three-numbers", IV, "<box>[[1, 2, 3]]</box>", {}, Status.MALFORMED_OUTPUT, []),
    (
        "binary-garbage",
        Q3,
        "</think>\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f",
        {},
        Status.MALFORMED_OUTPUT,
        [],
    ),
]


@pytest.mark.parametrize(
    ("family", "text", "kwargs", "status", "boxes"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_answer_table(family, text, kwargs, status, boxes) -> None:
    parsed = parse_answer(text, family, (W, H), **kwargs)
    assert parsed.status is status, parsed.message
    got = [(*box.as_list(3), label) for box, label in parsed.boxes]
    assert got == [
        tuple(pytest.approx(v) if isinstance(v, float | int) else v for v in b) for b in boxes
    ]
    if status is not Status.OK:
        assert parsed.message


def test_qwen25_boxes_map_back_through_the_processor_resize() -> None:
    # A 4K frame: the processor shrinks it to 1316 x 728 and the model answers in those pixels.
    size = model_input_size(Q25, 3840, 2160)
    assert size == (1316, 728)
    text = '```json\n[{"bbox_2d": [131.6, 72.8, 658, 364], "label": "door"}]\n```'
    parsed = parse_answer(text, Q25, (3840, 2160), model_input_size=size)
    assert parsed.status is Status.OK
    ((box, label),) = parsed.boxes
    assert box.as_list(3) == pytest.approx([384, 216, 1920, 1080]) and label == "door"


def test_numbers_in_the_reasoning_are_never_used() -> None:
    parsed = parse_answer(f"{EGM_REASONING}</think>\nNo mug here.", Q3, (W, H))
    assert parsed.status is Status.NOT_FOUND
    assert parsed.reasoning == EGM_REASONING
    assert parsed.answer == "No mug here."


def test_partial_answers_say_what_was_ignored() -> None:
    text = '</think>[{"bbox_2d": [0, 0, 100, 100]}, {"bbox_2d": [5, 5, 5, 5]}]'
    parsed = parse_answer(text, Q3, (W, H))
    assert parsed.status is Status.OK and len(parsed.boxes) == 1
    assert "ignored 1 box" in parsed.message


def test_split_reasoning() -> None:
    assert split_reasoning("a</think>b") == ("a", "b")
    assert split_reasoning("<think>\na\n</think>\n\nb") == ("a", "b")
    assert split_reasoning("<think>a still thinking") == ("a still thinking", "")
    assert split_reasoning("just an answer") == ("", "just an answer")
    assert split_reasoning("a</think>b</think>c") == ("a", "b</think>c")


def test_answer_complete_waits_for_the_end_of_the_answer() -> None:
    full = f'{EGM_REASONING}</think>\n```json\n[{{"bbox_2d": [1, 2, 3, 4]}}]\n```'
    ends = [i for i in range(len(full) + 1) if answer_complete(full[:i], Q3)]
    # The JSON list closes two characters before the fence: either is a complete answer.
    assert ends and ends[0] == full.rindex("]") + 1
    assert answer_complete('</think>[{"bbox_2d": [1, 2, 3, 4]}]', Q3)
    assert answer_complete("</think>```json\n[]\n```", Q3)
    assert not answer_complete('</think>[{"bbox_2d": [1, 2, 3, 4]}', Q3)
    assert not answer_complete("</think>The mug [the red one] is", Q3)
    assert not answer_complete('</think>[{"label": "a]}", "bbox_2d": [1, 2', Q3)
    assert answer_complete('</think>It\'s 5" tall: {"bbox_2d": [1, 2, 3, 4]}', Q3)
    assert answer_complete("</think><ref>a</ref><box>[[1, 2, 3, 4]]</box>", IV)
    assert not answer_complete("<ref>a</ref><box>[[1, 2, 3, 4]]</box>", IV)  # no </think> yet
    assert answer_complete("<ref>a</ref><box>[[1, 2, 3, 4]]</box>", IV, thinking=False)
    assert answer_complete('```json\n[{"bbox_2d": [1, 2, 3, 4]}]\n```', Q25, thinking=False)
    assert not answer_complete('<think>{"bbox_2d": [1, 2, 3, 4]}', Q3, thinking=False)


def test_the_grounders_stop_check_pickles_and_says_the_same() -> None:
    """An engine in a worker process gets the stop check itself (no round trip per token)."""
    import pickle

    full = f'{EGM_REASONING}</think>\n```json\n[{{"bbox_2d": [1, 2, 3, 4]}}]\n```'
    for family, thinking in ((Q3, True), (IV, False), (Q25, False)):
        check = pickle.loads(pickle.dumps(AnswerComplete(family, thinking)))
        assert check == AnswerComplete(family, thinking)
        for i in range(0, len(full) + 1, 7):
            assert check(full[:i]) is answer_complete(full[:i], family, thinking)


# ----------------------------------------------------------------------------- properties

sizes = st.tuples(st.integers(1, 4000), st.integers(1, 4000))
families = st.sampled_from(list(Family))
#: Pieces of real answers, so random texts reach every branch rather than only "prose".
fragments = st.sampled_from(
    [
        "<think>",
        "</think>",
        "```json\n",
        "```",
        '{"bbox_2d": ',
        '"label": "mug"',
        "[",
        "]",
        "{",
        "}",
        ", ",
        "<ref>",
        "</ref>",
        "<box>",
        "</box>",
        "[[1, 2, 3, 4]]",
        "[10, 20, 300, 400]",
        "-5",
        "1e9",
        "NaN",
        "0.5",
        "1200",
        '"',
        "\\",
        " the mug ",
    ]
)
texts = st.one_of(
    st.text(max_size=300), st.lists(st.one_of(fragments, st.text(max_size=5))).map("".join)
)


@settings(max_examples=400, deadline=None)
@given(text=texts, family=families, size=sizes, clip=st.booleans(), thinking=st.booleans())
def test_arbitrary_text_never_raises(text: str, family: Family, size, clip, thinking) -> None:
    parsed = parse_answer(text, family, size, model_input_size=size, clip=clip, thinking=thinking)
    assert parsed.status in (Status.OK, Status.NOT_FOUND, Status.MALFORMED_OUTPUT)
    assert (parsed.status is Status.OK) == bool(parsed.boxes)
    w, h = size
    for box, _ in parsed.boxes:
        assert box.x1 < box.x2 and box.y1 < box.y2
        if clip:
            assert 0 <= box.x1 and box.x2 <= w and 0 <= box.y1 and box.y2 <= h
        else:
            assert -w <= box.x1 and box.x2 <= 2 * w and -h <= box.y1 and box.y2 <= 2 * h


coords = st.one_of(
    st.integers(-5000, 5000),
    st.floats(-1e7, 1e7),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300]),
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(coords, min_size=4, max_size=4),
    family=families,
    size=sizes,
    junk=st.text(max_size=30),
)
def test_visible_boxes_are_always_inside_the_image(values, family, size, junk: str) -> None:
    text = f"{junk}</think>```json\n{json.dumps([{'bbox_2d': values}])}\n```"
    if family is Family.INTERNVL3:
        text = f"</think><ref>x</ref><box>[[{', '.join(map(str, values))}]]</box>"
    parsed = parse_answer(text, family, size, model_input_size=size, clip=True)
    w, h = size
    for box, _ in parsed.boxes:
        assert 0 <= box.x1 < box.x2 <= w
        assert 0 <= box.y1 < box.y2 <= h


def _answer(family: Family, quad: list[float], label: str) -> str:
    """What each family writes for one box, after an EGM-style reasoning."""
    if family is Family.INTERNVL3:
        return (
            f"{EGM_REASONING}</think><ref>{label}</ref><box>[[{', '.join(map(str, quad))}]]</box>"
        )
    obj = json.dumps([{"bbox_2d": quad, "label": label}])
    return f"{EGM_REASONING}</think>\n```json\n{obj}\n```"


@settings(max_examples=300, deadline=None)
@given(
    family=families,
    rel=st.tuples(*[st.integers(0, 1000)] * 4),
    size=st.tuples(st.integers(56, 4000), st.integers(56, 4000)),
    swap=st.booleans(),
)
def test_valid_answers_round_trip(family: Family, rel, size, swap: bool) -> None:
    x1, y1, x2, y2 = rel
    if x1 == x2 or y1 == y2:
        x2, y2 = min(x1, 999) + 1, min(y1, 999) + 1
    w, h = size
    frame = (1000, 1000) if family is not Family.QWEN2_5_VL else model_input_size(family, w, h)
    # The model's integer coordinates, in its own frame.
    quad = [round(v * f / 1000) for v, f in zip((x1, y1, x2, y2), frame * 2, strict=True)]
    if quad[0] == quad[2] or quad[1] == quad[3]:
        return  # too thin to exist at this resolution
    written = [quad[2], quad[3], quad[0], quad[1]] if swap else quad
    parsed = parse_answer(
        _answer(family, written, "mug"), family, size, model_input_size=frame, thinking=True
    )
    assert parsed.status is Status.OK, parsed.message
    ((box, label),) = parsed.boxes
    fx, fy = frame
    lo_x, hi_x = sorted((quad[0], quad[2]))
    lo_y, hi_y = sorted((quad[1], quad[3]))
    expected = [lo_x * w / fx, lo_y * h / fy, hi_x * w / fx, hi_y * h / fy]
    assert box.as_list(6) == pytest.approx(expected, abs=1e-3)
    assert label == "mug"
    assert answer_complete(_answer(family, written, "mug"), family)


reasoning_texts = st.lists(st.one_of(fragments, st.text(max_size=8))).map(
    lambda parts: "".join(parts).replace("</think>", "")
)


@settings(max_examples=200, deadline=None)
@given(reasoning=reasoning_texts, family=families, opened=st.booleans())
def test_never_complete_inside_the_reasoning(reasoning: str, family: Family, opened) -> None:
    # Either the output opened the think block itself, or the chat template did (thinking=True).
    text = f"<think>{reasoning}" if opened else reasoning
    for i in range(len(text) + 1):
        assert not answer_complete(text[:i], family, thinking=not opened)


@settings(max_examples=200, deadline=None)
@given(
    family=families,
    quads=st.lists(st.tuples(*[st.integers(0, 1000)] * 4), min_size=1, max_size=3),
    label=st.text(alphabet='ab []{}"\\', max_size=6),
    tail=st.text(max_size=20),
)
def test_early_stop_keeps_the_whole_answer(family: Family, quads, label: str, tail: str) -> None:
    """Where answer_complete first fires, the text parses to the same boxes as the full text."""
    if family is Family.INTERNVL3:
        label = label.replace("<", "").replace(">", "")
        body = "".join(
            f"<ref>{label}</ref><box>[[{', '.join(map(str, q))}]]</box>" for q in quads[:1]
        )
    else:
        body = json.dumps([{"bbox_2d": list(q), "label": label} for q in quads])
    full = f"{EGM_REASONING}</think>\n{body}{tail}"
    stops = [i for i in range(len(full) + 1) if answer_complete(full[:i], family)]
    assert stops and stops[0] <= len(full) - len(tail)
    early = parse_answer(full[: stops[0]], family, (W, H), thinking=True)
    whole = parse_answer(f"{EGM_REASONING}</think>\n{body}", family, (W, H), thinking=True)
    assert early == whole
