"""Referring expressions for synthetic scenes, with EGM-style reasoning traces written from the
scene graph and answers in the ``qwen3_vl`` format (``</think>`` then fenced JSON ``bbox_2d``,
0..1000 relative).

Expressions go from simple ("the red mug") to ones that need reasoning: ordinal ("the second
box from the left"), relative ("the ball behind the green box") and occlusion ("the partly
hidden mug"). Only expressions that pick out exactly one object are kept. Traces are short and
regular (the model that learns them is tiny) and, in amodal mode, name the occluder and the
directions in which the full object extends, with EGM's degree words.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from egm_ros.core.prompts import build_prompt
from egm_ros.core.types import Box, Mode
from egm_ros.data.scenes import Scene, SceneObject, generate_scene

ORDINALS = ("first", "second", "third", "fourth")
DIRECTION_WORDS = {
    "down": "downwards",
    "up": "upwards",
    "left": "to the left",
    "right": "to the right",
}


@dataclass
class Sample:
    expression: str
    target: int  # index into scene.objects
    mode: Mode
    reasoning: str
    answer: str

    @property
    def prompt(self) -> str:
        return build_prompt(self.expression, self.mode)

    def target_text(self, direct: bool = False) -> str:
        """What the model is trained to write (after the template's ``<think>``)."""
        reasoning = "" if direct else self.reasoning
        return f"{reasoning}</think>\n{self.answer}"


def degree(hidden: float) -> str:
    """EGM's words for how far the visible part must be extended."""
    for limit, word in (
        (0.15, "slightly"),
        (0.3, "a bit"),
        (0.5, "moderately"),
        (0.7, "considerably"),
    ):
        if hidden < limit:
            return word
    return "significantly"


def relative_box(box: Box, width: int, height: int) -> list[int]:
    return [
        round(box.x1 * 1000 / width),
        round(box.y1 * 1000 / height),
        round(box.x2 * 1000 / width),
        round(box.y2 * 1000 / height),
    ]


def answer_json(box: Box, label: str, width: int, height: int) -> str:
    payload = json.dumps([{"bbox_2d": relative_box(box, width, height), "label": label}])
    return f"```json\n{payload}\n```"


def _candidates(scene: Scene, kind: str) -> list[SceneObject]:
    return sorted(
        (o for o in scene.objects if o.kind == kind and o.visible is not None),
        key=lambda o: o.amodal.center[0],
    )


def _expressions(scene: Scene) -> Iterator[tuple[str, SceneObject, str]]:
    """(expression, target, why) for every unambiguous expression of the scene."""
    objs = [o for o in scene.objects if o.visible is not None]
    names = [o.name for o in objs]
    for o in objs:
        same_kind = _candidates(scene, o.kind)
        if len(same_kind) == 1:
            yield f"the {o.kind}", o, f"there is only one {o.kind}"
        if names.count(o.name) == 1:
            yield f"the {o.name}", o, f"only one {o.kind} is {o.colour}"
            sized = [p for p in objs if p.name == o.name or (p.kind == o.kind and p.size == o.size)]
            if len(sized) == 1:
                yield f"the {o.size} {o.name}", o, f"it is the {o.size} {o.colour} one"
        if len(same_kind) >= 2:
            i = same_kind.index(o)
            if i < len(ORDINALS):
                yield (
                    f"the {ORDINALS[i]} {o.kind} from the left",
                    o,
                    f"counting from the left it is number {i + 1}",
                )
            if i == 0:
                yield f"the leftmost {o.kind}", o, "it is furthest left"
            if i == len(same_kind) - 1:
                yield f"the rightmost {o.kind}", o, "it is furthest right"
        if o.visible_fraction < 0.85:
            hidden = [p for p in same_kind if p.visible_fraction < 0.85]
            if len(hidden) == 1:
                yield f"the partly hidden {o.kind}", o, "it is the one partly hidden"
        for j in o.occluders:
            front = scene.objects[j]
            if names.count(front.name) != 1 or front.visible is None:
                continue
            behind = [p for p in same_kind if j in p.occluders]
            if len(behind) == 1:
                yield (f"the {o.kind} behind the {front.name}", o, f"it is behind the {front.name}")


def _plural(kind: str, n: int) -> str:
    if n == 1:
        return kind
    return f"{kind}es" if kind.endswith("x") else f"{kind}s"


def _reasoning(scene: Scene, target: SceneObject, expression: str, why: str, mode: Mode) -> str:
    same = _candidates(scene, target.kind)
    listing = ", ".join(p.name for p in same)
    parts = [
        f"I look for {expression}.",
        f"{len(same)} {_plural(target.kind, len(same))}: {listing}.",
        f"The target is the {target.name}: {why}.",
    ]
    if mode is Mode.AMODAL:
        if target.occluders:
            front = ", ".join(scene.objects[j].name for j in target.occluders)
            hidden = 1.0 - target.visible_fraction
            ways = " and ".join(
                DIRECTION_WORDS[s] for s in target.hidden_sides if s in DIRECTION_WORDS
            )
            extent = f"extends {degree(hidden)} {ways}" if ways else "is a bit larger"
            parts.append(f"The {front} hides part of it; the full {target.kind} {extent}.")
        else:
            parts.append("Nothing hides it; the full object is what I see.")
    return " ".join(parts)


def make_samples(
    scene: Scene, rng: np.random.Generator, *, amodal: bool, per_scene: int = 2
) -> list[Sample]:
    """Up to ``per_scene`` samples from ``scene`` (distinct targets where possible)."""
    found = list(_expressions(scene))
    rng.shuffle(found)
    width, height = scene.size
    chosen: list[Sample] = []
    used: set[int] = set()
    for expression, target, why in sorted(found, key=lambda e: e[1].index in used):
        if len(chosen) >= per_scene:
            break
        if target.index in used and len(used) < len({t.index for _, t, _ in found}):
            continue
        mode = Mode.AMODAL if amodal and rng.random() < 0.5 else Mode.VISIBLE
        box = target.amodal if mode is Mode.AMODAL else target.visible
        chosen.append(
            Sample(
                expression,
                target.index,
                mode,
                _reasoning(scene, target, expression, why, mode),
                answer_json(box, target.name, width, height),
            )
        )
        used.add(target.index)
    return chosen


def resolve(scene: Scene, expression: str) -> list[int]:
    """Indices of the objects an expression fits (an independent check of uniqueness)."""
    return sorted({t.index for e, t, _ in _expressions(scene) if e == expression})


def samples(
    seeds: range,
    *,
    amodal: bool = True,
    per_scene: int = 2,
    scene_fn: Callable[[int], Scene] = generate_scene,
) -> Iterator[tuple[Scene, Sample]]:
    for seed in seeds:
        scene = scene_fn(seed)
        rng = np.random.default_rng(seed + 7_919)
        for sample in make_samples(scene, rng, amodal=amodal, per_scene=per_scene):
            yield scene, sample


def corpus_lines(n_scenes: int = 300, seed: int = 0) -> Iterator[str]:
    """Every kind of text the generator emits (prompts and targets), for the tokenizer."""
    for _, sample in samples(range(seed, seed + n_scenes)):
        yield sample.prompt
        yield sample.target_text()
