"""Referring expressions are unambiguous, traces follow the scene graph, answers round-trip."""

from __future__ import annotations

import numpy as np

from egm_ros.core.families import Family
from egm_ros.core.parsing import parse_answer
from egm_ros.core.types import Mode, Status
from egm_ros.data.expressions import corpus_lines, degree, resolve, samples


def test_every_expression_picks_out_exactly_its_target() -> None:
    kinds = set()
    for scene, sample in samples(range(150)):
        assert resolve(scene, sample.expression) == [sample.target]
        kinds.add(sample.expression.split()[1])
    assert {"second", "partly", "leftmost"} & kinds  # reasoning-needing kinds occur


def test_answers_parse_back_to_the_target_box_within_a_pixel() -> None:
    for scene, sample in samples(range(40)):
        target = scene.objects[sample.target]
        box = target.amodal if sample.mode is Mode.AMODAL else target.visible
        parsed = parse_answer(
            sample.target_text(), Family.QWEN3_VL, scene.size, clip=sample.mode is Mode.VISIBLE
        )
        assert parsed.status is Status.OK
        got = parsed.boxes[0][0]
        assert (
            np.allclose(got.as_list(3), box.as_list(3), atol=1.0)
            or sample.mode is Mode.VISIBLE
            and np.allclose(got.as_list(3), box.as_list(3), atol=1.2)
        )
        assert parsed.reasoning == sample.reasoning


def test_amodal_traces_name_the_occluder_and_the_direction() -> None:
    seen = 0
    for scene, sample in samples(range(200)):
        target = scene.objects[sample.target]
        if sample.mode is Mode.AMODAL and target.occluders:
            front = scene.objects[target.occluders[0]].name
            assert f"The {front}" in sample.reasoning and "hides part of it" in sample.reasoning
            seen += 1
    assert seen > 10


def test_degree_words_and_corpus() -> None:
    assert [degree(h) for h in (0.1, 0.2, 0.4, 0.6, 0.9)] == [
        "slightly",
        "a bit",
        "moderately",
        "considerably",
        "significantly",
    ]
    lines = list(corpus_lines(5))
    assert any("</think>" in line for line in lines) and any("<ref>" in line for line in lines)


def test_direct_target_has_no_reasoning() -> None:
    _, sample = next(iter(samples(range(1))))
    assert sample.target_text(direct=True).startswith("</think>")
