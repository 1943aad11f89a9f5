"""Referring expressions for synthetic scenes, with EGM-style reasoning traces written from the
scene graph and answers in the ``qwen3_vl`` format (``</think>``, then fenced JSON ``bbox_2d``
in 0..1000 relative coordinates).

What the words mean (a checker can resolve an expression from these rules alone):

- ``the [small|large] [colour] KIND``: objects of that kind with those attributes.
- ``the leftmost KIND``, ``the rightmost KIND``, ``the second KIND from the left`` (``from the
  right``): objects of a kind ordered by the centre of their full (amodal) box.
- ``the KIND behind the REF``: a KIND (other than REF) that REF hides part of; ``in front of
  the REF``: a KIND that hides part of REF; ``left of the REF``: a KIND whose full box's centre
  lies left of REF's full box (``right of`` likewise). REF is an attribute phrase naming exactly
  one object.
- ``the partly hidden KIND``: less than 90 % of it is visible; ``the fully visible KIND``:
  nothing hides any of it.

Only expressions that pick out exactly one object are made, and only with a safety margin
(no near-ties in position or visibility). Traces are short and regular, because the model that
learns them is tiny: the candidates, which one matches and why, and in amodal mode what hides
the target and how far the full object extends in which direction, with EGM's degree words.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from egm_ros.core.prompts import build_prompt
from egm_ros.core.types import Box, Mode
from egm_ros.data.scenes import COLOURS, KINDS, SIZES, Scene, SceneObject, generate_scene

ORDINALS = ("first", "second", "third", "fourth")
RELATIONS = ("behind", "in front of", "left of", "right of")
DIRECTIONS = {
    "left": "to the left",
    "right": "to the right",
    "top": "upwards",
    "bottom": "downwards",
}
DEGREES = ((0.15, "slightly"), (0.3, "a bit"), (0.5, "moderately"), (0.7, "considerably"))
PARTLY_HIDDEN = 0.9  # "partly hidden": visible fraction below this
#: Margins that keep expressions away from near-ties (pixels at 224, scaled with the image).
ORDER_GAP, SIDE_GAP = 6.0, 4.0
#: "partly hidden" is said only of a target at most this visible, among others at least ...
HIDDEN_AT_MOST, OTHERS_AT_LEAST = 0.8, 0.97
#: An extension smaller than this share of the object is not worth a word.
MIN_EXTENSION = 0.03


@dataclass(frozen=True)
class Expression:
    text: str
    target: int
    category: str  # attribute, ordinal, relative or occlusion
    why: str  # the reasoning sentence that singles the target out


@dataclass
class Sample:
    expression: str
    target_index: int  # index into scene.objects
    mode: Mode
    reasoning: str
    answer: str  # the fenced JSON block
    category: str = ""

    @property
    def target(self) -> int:
        """Same as ``target_index`` (older callers)."""
        return self.target_index

    @property
    def prompt(self) -> str:
        """The user text, exactly as the grounder sends it for this mode."""
        return build_prompt(self.expression, self.mode)

    def target_text(self) -> str:
        """Same as ``sample_text(self)`` (older callers)."""
        return sample_text(self)


def sample_text(sample: Sample, *, direct: bool = False) -> str:
    """The assistant's full target text (after the chat template's ``<think>``); ``direct``:
    no reasoning, just ``</think>`` and the answer, for the "does reasoning help?" rows."""
    reasoning = "" if direct else sample.reasoning
    return f"{reasoning}</think>\n{sample.answer}"


def degree(hidden: float) -> str:
    """EGM's word for how far the visible part must be extended (share of the object)."""
    for limit, word in DEGREES:
        if hidden < limit:
            return word
    return "significantly"


def relative_box(box: Box, width: int, height: int) -> list[int]:
    """Pixels to Qwen3-VL's 0..1000 integer coordinates."""
    return [
        round(box.x1 * 1000 / width),
        round(box.y1 * 1000 / height),
        round(box.x2 * 1000 / width),
        round(box.y2 * 1000 / height),
    ]


def answer_json(box: Box, label: str, width: int, height: int) -> str:
    payload = json.dumps([{"bbox_2d": relative_box(box, width, height), "label": label}])
    return f"```json\n{payload}\n```"


def _phrase(obj: SceneObject, attrs: tuple[str, ...]) -> str:
    words = [getattr(obj, a) for a in ("size", "colour") if a in attrs]
    return " ".join([*words, obj.kind])


def _attribute_phrases(scene: Scene, obj: SceneObject) -> Iterator[tuple[tuple[str, ...], str]]:
    """(attributes, phrase) for every attribute phrase naming only ``obj``, shortest first."""
    for attrs in ((), ("colour",), ("size",), ("size", "colour")):
        fits = [
            o
            for o in scene.objects
            if o.kind == obj.kind and all(getattr(o, a) == getattr(obj, a) for a in attrs)
        ]
        if fits == [obj]:
            yield attrs, _phrase(obj, attrs)


def _names(objs: list[SceneObject]) -> str:
    return ", ".join(o.full_name for o in objs)


def _listing(objs: list[SceneObject], scene: Scene) -> str:
    """Each object with its visible box (0..1000): the trace then names every candidate at its
    place, so twins differ by where they are and the answer has a box to copy."""
    return ", ".join(f"{o.full_name} {_box(o.visible, scene)}" for o in objs)


def _box(box: Box, scene: Scene) -> str:
    """A box in the trace, without spaces: 9 tokens instead of 12 (the answer keeps JSON's)."""
    return json.dumps(relative_box(box, *scene.size), separators=(",", ":"))


def _attribute(scene: Scene, obj: SceneObject) -> Iterator[Expression]:
    for attrs, phrase in _attribute_phrases(scene, obj):
        if not attrs:
            why = f"There is one {obj.kind}: the {obj.full_name}."
        else:
            why = f"Only the {obj.full_name} is {' and '.join(getattr(obj, a) for a in attrs)}."
        yield Expression(f"the {phrase}", obj.index, "attribute", why)


def _ordinal(scene: Scene, kind: str, scale: float) -> Iterator[Expression]:
    row = sorted((o for o in scene.objects if o.kind == kind), key=lambda o: o.amodal.center[0])
    xs = [o.amodal.center[0] for o in row]
    if len(row) < 2 or min(np.diff(xs)) < ORDER_GAP * scale:
        return
    for side, order in (("left", row), ("right", row[::-1])):
        listing = f"From the {side}: {_listing(order, scene)}."
        for k, obj in enumerate(order[: len(ORDINALS)]):
            why = f"{listing} The {ORDINALS[k]} is the {obj.full_name}."
            yield Expression(f"the {ORDINALS[k]} {kind} from the {side}", obj.index, "ordinal", why)
            if k == 0:
                yield Expression(f"the {side}most {kind}", obj.index, "ordinal", why)


def _holds(obj: SceneObject, relation: str, ref: SceneObject, margin: float) -> bool:
    """The relation, with ``margin`` pixels of slack (negative: stricter)."""
    cx = obj.amodal.center[0]
    if relation == "behind":
        return ref.index in obj.occluders
    if relation == "in front of":
        return obj.index in ref.occluders
    if relation == "left of":
        return cx < ref.amodal.x1 + margin
    return cx > ref.amodal.x2 - margin


def _relative(scene: Scene, ref: SceneObject, scale: float) -> Iterator[Expression]:
    ref_phrase = next((p for _, p in _attribute_phrases(scene, ref)), None)
    if ref_phrase is None:
        return
    gap = SIDE_GAP * scale
    for kind in KINDS:
        others = [o for o in scene.objects if o.kind == kind and o is not ref]
        for relation in RELATIONS:
            strict = [o for o in others if _holds(o, relation, ref, -gap)]
            loose = [o for o in others if _holds(o, relation, ref, gap)]
            if len(strict) != 1 or loose != strict:
                continue
            obj = strict[0]
            at = f"{ref.full_name} {_box(ref.visible, scene)}"
            if relation == "behind":
                why = f"The {at} hides part of the {obj.full_name}."
            elif relation == "in front of":
                why = f"The {obj.full_name} hides part of the {at}."
            else:
                why = f"{relation.capitalize()} the {at}: the {obj.full_name}."
            text = f"the {kind} {relation} the {ref_phrase}"
            yield Expression(text, obj.index, "relative", why)


def _occlusion(scene: Scene, kind: str) -> Iterator[Expression]:
    row = [o for o in scene.objects if o.kind == kind]
    for obj in row:
        rest = [o for o in row if o is not obj]
        if not rest:
            continue
        if obj.visible_fraction <= HIDDEN_AT_MOST and all(
            o.visible_fraction >= OTHERS_AT_LEAST for o in rest
        ):
            why = f"Partly hidden: the {obj.full_name}."
            yield Expression(f"the partly hidden {kind}", obj.index, "occlusion", why)
        if not obj.occlusions and all(o.visible_fraction <= HIDDEN_AT_MOST for o in rest):
            why = f"Fully visible: the {obj.full_name}."
            yield Expression(f"the fully visible {kind}", obj.index, "occlusion", why)


def expressions(scene: Scene) -> list[Expression]:
    """Every unambiguous expression of the scene, in a fixed order."""
    scale = min(scene.size) / 224.0
    out: list[Expression] = []
    for obj in scene.objects:
        out.extend(_attribute(scene, obj))
        out.extend(_relative(scene, obj, scale))
    for kind in KINDS:
        out.extend(_ordinal(scene, kind, scale))
        out.extend(_occlusion(scene, kind))
    return out


def _amodal_reasoning(scene: Scene, obj: SceneObject) -> str:
    """Where the visible part is, what hides the rest and how far the full object extends:
    the amodal box is then the visible box pushed out by the named degrees."""
    if not obj.occlusions:
        return "Nothing hides it."
    parts = [
        f"The {scene.objects[o.by].full_name} hides its {o.side} part." for o in obj.occlusions[:2]
    ]
    reach = sorted(
        ((share, side) for side, share in obj.extension().items() if share >= MIN_EXTENSION),
        reverse=True,
    )[:2]
    if reach:
        ways = " and ".join(f"{degree(share)} {DIRECTIONS[side]}" for share, side in reach)
        parts.append(f"It extends {ways}.")
    else:
        parts.append("The full box is the visible box.")
    return " ".join(parts)


def reasoning(scene: Scene, expr: Expression, mode: Mode) -> str:
    """The EGM-style trace: the candidates at their places, the match and why, then (amodal)
    occluder and extent."""
    obj = scene.objects[expr.target]
    row = sorted((o for o in scene.objects if o.kind == obj.kind), key=lambda o: o.amodal.x1)
    listed = expr.category != "ordinal"  # an ordinal's why lists them in order
    parts = [f"Candidates: {_listing(row, scene)}.", expr.why] if listed else [expr.why]
    parts.append(f"Target: {_listing([obj], scene)}.")  # the box the answer starts from
    if mode is Mode.AMODAL:
        parts.append(_amodal_reasoning(scene, obj))
    return " ".join(parts)


def _amodal_interest(obj: SceneObject) -> int:
    """Amodal targets worth asking about first: the full box must be inferred, then hidden."""
    if max(obj.extension().values(), default=0.0) >= 0.05:
        return 0
    return 1 if obj.occlusions else 2


def make_samples(
    scene: Scene, rng: np.random.Generator, *, amodal: bool, per_scene: int = 2
) -> list[Sample]:
    """Up to ``per_scene`` samples with distinct targets, all in one mode. The kind of
    expression is drawn evenly among those the target has; amodal mode prefers targets whose
    full box differs from the visible one."""
    mode = Mode.AMODAL if amodal else Mode.VISIBLE
    by_target: dict[int, list[Expression]] = {}
    for expr in expressions(scene):
        by_target.setdefault(expr.target, []).append(expr)
    targets = [sorted(by_target)[i] for i in rng.permutation(len(by_target))]
    if amodal:
        targets.sort(key=lambda t: _amodal_interest(scene.objects[t]))
    width, height = scene.size
    out = []
    for t in targets[:per_scene]:
        options = by_target[t]
        category = rng.choice(sorted({e.category for e in options}))
        matching = [e for e in options if e.category == category]
        expr = matching[int(rng.integers(len(matching)))]
        obj = scene.objects[t]
        box = obj.amodal if amodal else obj.visible
        out.append(
            Sample(
                expression=expr.text,
                target_index=t,
                mode=mode,
                reasoning=reasoning(scene, expr, mode),
                answer=answer_json(box, obj.name, width, height),
                category=expr.category,
            )
        )
    return out


def samples(
    seeds: range,
    *,
    amodal: bool = True,
    per_scene: int = 2,
    scene_fn: Callable[[int], Scene] = generate_scene,
) -> Iterator[tuple[Scene, Sample]]:
    """(scene, sample) pairs over ``seeds``; ``amodal``: half of the scenes ask amodal."""
    for seed in seeds:
        scene = scene_fn(seed)
        rng = np.random.default_rng([seed, 7919])
        scene_amodal = amodal and bool(rng.random() < 0.5)
        for sample in make_samples(scene, rng, amodal=scene_amodal, per_scene=per_scene):
            yield scene, sample


def lexicon() -> str:
    """Every word the generator can use, once (so a tokenizer sees all of them)."""
    words = [
        *KINDS,
        *COLOURS,
        *SIZES,
        *ORDINALS,
        *RELATIONS,
        *DIRECTIONS,
        *DIRECTIONS.values(),
        *(w for _, w in DEGREES),
        "significantly leftmost rightmost partly hidden fully visible from the",
        "Candidates: There is one: Only the is and. From the The Left of Right of",
        "hides part of its Partly Fully Nothing hides it. It extends full box Visible part:",
    ]
    return " ".join(words)


def corpus_lines(n_scenes: int = 300, seed: int = 0) -> Iterator[str]:
    """All kinds of text the generator emits (prompts of both modes and targets), for
    training the tokenizer."""
    yield lexicon()
    for s in range(seed, seed + n_scenes):
        scene = generate_scene(s)
        rng = np.random.default_rng([s, 104729])
        for amodal in (False, True):
            for sample in make_samples(scene, rng, amodal=amodal):
                yield sample.prompt
                yield sample_text(sample)
