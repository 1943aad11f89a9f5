"""The answer parser: a table of real-looking model outputs with exact expected pixel boxes
and statuses, and property-based tests that it never raises and never returns a box outside
the image."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egm_ros.core.families import Family
from egm_ros.core.parsing import answer_complete, parse_answer, split_reasoning
from egm_ros.core.types import Status

W, H = 1000, 500  # source image: 0..1000 relative x maps 1:1, y maps 1:2
Q3, Q25, IV = Family.QWEN3_VL, Family.QWEN2_5_VL, Family.INTERNVL3
EGM_REASONING = (
    "The image shows a table with two mugs. The red mug is on the left, partly behind the "
    "laptop at [420, 300, 700, 800]; the blue one is on the right."
)

TABLE = [
    # (id, family, text, kwargs, status, [(x1, y1, x2, y2, label)])
    (
        "egm-fenced",
        Q3,
        f'{EGM_REASONING}</think>\n```json\n[{{"bbox_2d": [100, 200, 300, 600], '
        f'"label": "red mug"}}]\n```',
        {},
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
        "amodal-bounded",
        Q3,
        '</think>[{"bbox_2d": [-99999, 0, 99999, 100]}]',
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
        "internvl-after-think",
        IV,
        f"{EGM_REASONING}</think><ref>mug</ref><box>[[100, 200, 300, 600]]</box>",
        {},
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
    ("prose", Q3, "</think>I cannot find a mug in this image.", {}, Status.NOT_FOUND, []),
    (
        "prose-with-few-numbers",
        Q3,
        "</think>There are 2 mugs and 3 cups on 1 table.",
        {},
        Status.NOT_FOUND,
        [],
    ),
    (
        "zero-area-after-clip",
        Q3,
        '</think>[{"bbox_2d": [1100, 100, 1200, 200]}]',
        {},
        Status.NOT_FOUND,
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
    ("nothing-after-think", Q3, "reasoning only</think>", {}, Status.MALFORMED_OUTPUT, []),
    ("internvl-unclosed", IV, "<ref>mug</ref><box>[[100, 200, 3", {}, Status.MALFORMED_OUTPUT, []),
    (
        "binary-garbage",
        Q3,
        "</think>\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f",
        {},
        Status.MALFORMED_OUTPUT,
        [],
    ),
    ("nan-and-inf", Q3, '</think>[{"bbox_2d": [NaN, 1, Infinity, 2]}]', {}, Status.NOT_FOUND, []),
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


def test_numbers_in_the_reasoning_are_never_used() -> None:
    parsed = parse_answer(f"{EGM_REASONING}</think>\nNo mug here.", Q3, (W, H))
    assert parsed.status is Status.NOT_FOUND
    assert parsed.reasoning == EGM_REASONING


def test_split_reasoning() -> None:
    assert split_reasoning("a</think>b") == ("a", "b")
    assert split_reasoning("<think>a</think>b") == ("a", "b")
    assert split_reasoning("<think>a still thinking") == ("a still thinking", "")
    assert split_reasoning("just an answer") == ("", "just an answer")


def test_answer_complete_waits_for_the_end_of_the_answer() -> None:
    full = f'{EGM_REASONING}</think>\n```json\n[{{"bbox_2d": [1, 2, 3, 4]}}]\n```'
    ends = [i for i in range(len(full) + 1) if answer_complete(full[:i], Q3)]
    assert ends and ends[0] == len(full)
    assert answer_complete('</think>[{"bbox_2d": [1, 2, 3, 4]}]', Q3)
    assert not answer_complete('</think>[{"bbox_2d": [1, 2, 3, 4]}', Q3)
    assert answer_complete("</think><ref>a</ref><box>[[1, 2, 3, 4]]</box>", IV)
    assert not answer_complete("<ref>a</ref><box>[[1, 2, 3, 4]]</box>", IV)  # no </think> yet
    assert answer_complete("<ref>a</ref><box>[[1, 2, 3, 4]]</box>", IV, thinking=False)
    assert answer_complete('```json\n[{"bbox_2d": [1, 2, 3, 4]}]\n```', Q3, thinking=False)


# ----------------------------------------------------------------------------- properties

sizes = st.tuples(st.integers(1, 4000), st.integers(1, 4000))
families = st.sampled_from(list(Family))


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400), family=families, size=sizes, clip=st.booleans())
def test_arbitrary_text_never_raises(text: str, family: Family, size, clip: bool) -> None:
    parsed = parse_answer(text, family, size, model_input_size=size, clip=clip)
    assert parsed.status in (Status.OK, Status.NOT_FOUND, Status.MALFORMED_OUTPUT)
    assert (parsed.status is Status.OK) == bool(parsed.boxes)


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
    payload = json.dumps([{"bbox_2d": values}]).replace("NaN", "NaN")
    text = f"{junk}</think>```json\n{payload}\n```"
    if family is Family.INTERNVL3:
        text = f"</think><ref>x</ref><box>[[{', '.join(map(str, values))}]]</box>"
    parsed = parse_answer(text, family, size, model_input_size=size, clip=True)
    w, h = size
    for box, _ in parsed.boxes:
        assert 0 <= box.x1 < box.x2 <= w
        assert 0 <= box.y1 < box.y2 <= h


@settings(max_examples=200, deadline=None)
@given(
    x1=st.integers(0, 999),
    y1=st.integers(0, 999),
    dx=st.integers(1, 1000),
    dy=st.integers(1, 1000),
    size=sizes,
)
def test_valid_answers_round_trip(x1: int, y1: int, dx: int, dy: int, size) -> None:
    x2, y2 = min(1000, x1 + dx), min(1000, y1 + dy)
    text = f'ok</think>```json\n[{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}]}}]\n```'
    parsed = parse_answer(text, Family.QWEN3_VL, size)
    w, h = size
    expected = [x1 * w / 1000, y1 * h / 1000, x2 * w / 1000, y2 * h / 1000]
    if expected[2] - expected[0] > 0 and expected[3] - expected[1] > 0:
        ((box, _),) = parsed.boxes
        assert box.as_list(6) == pytest.approx(expected, abs=1e-3)


@settings(max_examples=200, deadline=None)
@given(reasoning=st.text(max_size=200).filter(lambda t: "</think>" not in t), family=families)
def test_never_complete_inside_the_reasoning(reasoning: str, family: Family) -> None:
    for i in range(0, len(reasoning) + 1, 7):
        assert not answer_complete(reasoning[:i], family, thinking=True)
