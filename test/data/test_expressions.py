"""Referring expressions are unambiguous (checked by an independent resolver written from the
documented meaning of the words), traces follow the scene graph, answers round-trip."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from egm_ros.core.families import Family
from egm_ros.core.parsing import parse_answer
from egm_ros.core.types import Mode, Status
from egm_ros.data.expressions import (
    corpus_lines,
    degree,
    expressions,
    make_samples,
    relative_box,
    sample_text,
    samples,
)
from egm_ros.data.scenes import COLOURS, KINDS, Scene, generate_scene

ATTR = rf"(?:(small|large) )?(?:({'|'.join(COLOURS)}) )?({'|'.join(KINDS)})"
ORDINAL = {"first": 0, "second": 1, "third": 2, "fourth": 3}


def _attr(scene: Scene, size, colour, kind) -> list:
    return [
        o
        for o in scene.objects
        if o.kind == kind and size in (None, o.size) and colour in (None, o.colour)
    ]


def resolve(scene: Scene, text: str) -> list[int]:
    """The objects an expression fits, from the words' meaning alone."""
    if m := re.fullmatch(rf"the {ATTR}", text):
        return [o.index for o in _attr(scene, *m.groups())]
    if m := re.fullmatch(
        r"the (first|second|third|fourth|leftmost|rightmost) (\w+)(?: from "
        r"the (left|right))?",
        text,
    ):
        word, kind, side = m.groups()
        row = sorted((o for o in scene.objects if o.kind == kind), key=lambda o: o.amodal.center[0])
        if word in ("leftmost", "rightmost"):
            return [row[0 if word == "leftmost" else -1].index]
        row = row if side == "left" else row[::-1]
        return [row[ORDINAL[word]].index] if ORDINAL[word] < len(row) else []
    if m := re.fullmatch(rf"the (\w+) (behind|in front of|left of|right of) the {ATTR}", text):
        kind, relation, *ref_words = m.groups()
        refs = _attr(scene, *ref_words)
        assert len(refs) == 1, f"reference of {text!r} is ambiguous"
        ref = refs[0]
        fits = []
        for o in scene.objects:
            if o.kind != kind or o is ref:
                continue
            cx = o.amodal.center[0]
            if (
                (relation == "behind" and ref.index in [c.by for c in o.occlusions])
                or (relation == "in front of" and o.index in [c.by for c in ref.occlusions])
                or (relation == "left of" and cx < ref.amodal.x1)
                or (relation == "right of" and cx > ref.amodal.x2)
            ):
                fits.append(o.index)
        return fits
    if m := re.fullmatch(r"the (partly hidden|fully visible) (\w+)", text):
        state, kind = m.groups()
        return [
            o.index
            for o in scene.objects
            if o.kind == kind
            and ((o.visible_fraction < 0.9) if state == "partly hidden" else not o.occlusions)
        ]
    raise AssertionError(f"expression outside the grammar: {text!r}")


@pytest.fixture(scope="module")
def scenes():
    return [generate_scene(seed) for seed in range(60)]


@pytest.fixture(scope="module")
def scene_samples(scenes):
    """(scene, sample) in both modes, three targets per scene."""
    rng = np.random.default_rng(0)
    return [
        (scene, sample)
        for scene in scenes
        for amodal in (False, True)
        for sample in make_samples(scene, rng, amodal=amodal, per_scene=3)
    ]


def test_every_expression_picks_out_exactly_its_target(scenes) -> None:
    categories, checked = set(), 0
    for scene in scenes:
        for expr in expressions(scene):
            assert resolve(scene, expr.text) == [expr.target], expr
            categories.add(expr.category)
            checked += 1
    assert categories == {"attribute", "ordinal", "relative", "occlusion"}
    assert checked > 500


def test_every_relation_and_ordinal_form_occurs(scenes) -> None:
    texts = " | ".join(e.text for s in scenes for e in expressions(s))
    for phrase in (
        "behind the",
        "in front of the",
        "left of the",
        "right of the",
        "leftmost",
        "rightmost",
        "second",
        "from the right",
        "partly hidden",
        "fully visible",
    ):
        assert phrase in texts, phrase


def test_scene_stream_mixes_modes_over_seeds() -> None:
    modes = [sample.mode for _, sample in samples(range(20))]
    assert set(modes) == {Mode.VISIBLE, Mode.AMODAL}
    assert {s.mode for _, s in samples(range(20), amodal=False)} == {Mode.VISIBLE}


def test_samples_are_deterministic_and_in_one_mode(scenes) -> None:
    scene = scenes[3]
    first = make_samples(scene, np.random.default_rng(1), amodal=True, per_scene=3)
    again = make_samples(scene, np.random.default_rng(1), amodal=True, per_scene=3)
    assert first == again and first
    assert {s.mode for s in first} == {Mode.AMODAL}
    assert len({s.target_index for s in first}) == len(first)
    visible = make_samples(scene, np.random.default_rng(1), amodal=False)
    assert {s.mode for s in visible} == {Mode.VISIBLE}


def test_amodal_mode_prefers_targets_whose_full_box_must_be_inferred(scenes) -> None:
    rng = np.random.default_rng(0)
    extended = [
        bool(scene.objects[s.target_index].extension())
        for scene in scenes
        for s in make_samples(scene, rng, amodal=True, per_scene=1)
    ]
    plain = sum(bool(o.extension()) for s in scenes for o in s.objects) / sum(
        len(s.objects) for s in scenes
    )
    assert np.mean(extended) > plain + 0.3


def test_answers_parse_back_to_the_target_box_within_a_pixel(scene_samples) -> None:
    for scene, sample in scene_samples:
        target = scene.objects[sample.target_index]
        amodal = sample.mode is Mode.AMODAL
        box = target.amodal if amodal else target.visible
        for direct in (False, True):
            text = sample_text(sample, direct=direct)
            parsed = parse_answer(text, Family.QWEN3_VL, scene.size, clip=not amodal)
            assert parsed.status is Status.OK
            got, label = parsed.boxes[0]
            assert np.allclose(got.as_list(3), box.as_list(3), atol=1.0)
            assert label == target.name
            assert parsed.reasoning == ("" if direct else sample.reasoning)
        assert sample_text(sample, direct=True).startswith("</think>\n```json\n")


def test_traces_name_the_target_and_in_amodal_mode_the_occluder_and_direction(
    scene_samples,
) -> None:
    words = {"downwards", "upwards", "to the left", "to the right"}
    occluded_seen = 0
    for scene, sample in scene_samples:
        target = scene.objects[sample.target_index]
        assert target.full_name in sample.reasoning
        assert 4 <= len(sample.reasoning.split()) <= 120, sample.reasoning
        seen = relative_box(target.visible, *scene.size)
        compact = json.dumps(seen, separators=(",", ":"))
        assert f"Target: {target.full_name} {compact}." in sample.reasoning
        if sample.mode is Mode.VISIBLE:
            assert "hides its" not in sample.reasoning
            continue
        if not target.occlusions:
            assert "Nothing hides it." in sample.reasoning
            continue
        occluded_seen += 1
        front = scene.objects[target.occlusions[0].by]
        assert f"The {front.full_name} hides its {target.occlusions[0].side} part" in (
            sample.reasoning
        )
        reach = target.extension()
        if reach and max(reach.values()) >= 0.03:
            side = max(reach, key=reach.get)
            word = {"bottom": "downwards", "top": "upwards"}.get(side, f"to the {side}")
            assert f"{degree(reach[side])} {word}" in sample.reasoning
        else:
            assert not any(w in sample.reasoning for w in words)
    assert occluded_seen > 20


def test_degree_words_follow_the_hidden_share() -> None:
    assert [degree(h) for h in (0.05, 0.2, 0.4, 0.6, 0.9)] == [
        "slightly",
        "a bit",
        "moderately",
        "considerably",
        "significantly",
    ]


def test_corpus_covers_prompts_targets_and_the_vocabulary() -> None:
    lines = list(corpus_lines(8, seed=100))
    assert lines == list(corpus_lines(8, seed=100))
    text = "\n".join(lines)
    assert "</think>" in text and "```json" in text
    assert ", output its bbox coordinates using JSON format" in text  # the EGM-Qwen prompts
    assert " amodally, output its bbox coordinates using JSON format" in text
    for word in (*KINDS, *COLOURS, "small", "large", "significantly", "upwards"):
        assert word in text, word
