"""Prompts exactly as the EGM checkpoints were trained and evaluated, per model family, and the
plain-Qwen3-VL prompt for base models. The message layout (image first, then this text, no
system prompt) is the engines' job.

Source: the authors' evaluation script (zgq1879/EGM ``verl/scripts/vllm_infer.py``; the
``qwen3`` templates for the EGM-Qwen checkpoints, ``grounding``/``amodal`` for the InternVL
ones, chosen by ``verl/scripts/vllm_infer.sh`` and ``verl-internvl/scripts/vllm_infer.sh``).
Kept character for character: one changed character (the InternVL prompt's trailing space)
changes a model's answers. Their SFT data (``sft/data_generation/convert_gpt_to_qwen3_sft.py``)
writes the Qwen prompt with a final period (``...using JSON format.``); the evaluation script,
whose numbers the paper reports, has none, and so has this module.

A model folder may declare the wording it was trained with (:func:`declared_templates`); the
EGM style then uses that instead, so a model trained on other words keeps working."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from egm_ros.core.families import Family
from egm_ros.core.types import GroundingError, Mode, Status


class PromptStyle(enum.StrEnum):
    EGM = "egm"  # EGM checkpoints: the wording of their family
    BASE = "base"  # plain Qwen3-VL models


#: EGM-Qwen checkpoints (``prompt_template=qwen3`` / ``qwen3_amodal`` in the authors' script).
QWEN_VISIBLE = "Locate {sent}, output its bbox coordinates using JSON format"
QWEN_AMODAL = "Locate {sent} amodally, output its bbox coordinates using JSON format"
#: EGM-InternVL checkpoints (``grounding`` / ``amodal``). The visible one ends with a space and
#: the amodal one does not, as in the authors' script.
INTERNVL_VISIBLE = (
    "Please provide the bounding box coordinate of the region this sentence describes: "
    "<ref>{sent}</ref> "
)
INTERNVL_AMODAL = (
    "Please provide the amodal bounding box coordinate of the region this sentence describes: "
    "<ref>{sent}</ref>"
)
BASE_VISIBLE = QWEN_VISIBLE
#: The authors have no base-model amodal prompt. This keeps their base wording and spells out
#: what "amodal" means, since a base model was never taught the word.
BASE_AMODAL = (
    "Locate {sent}, including any part hidden behind other objects, output its full (amodal) "
    "bbox coordinates using JSON format"
)

_EGM = {
    Family.QWEN3_VL: {Mode.VISIBLE: QWEN_VISIBLE, Mode.AMODAL: QWEN_AMODAL},
    Family.QWEN2_5_VL: {Mode.VISIBLE: QWEN_VISIBLE, Mode.AMODAL: QWEN_AMODAL},
    Family.INTERNVL3: {Mode.VISIBLE: INTERNVL_VISIBLE, Mode.AMODAL: INTERNVL_AMODAL},
}
_BASE = {Mode.VISIBLE: BASE_VISIBLE, Mode.AMODAL: BASE_AMODAL}
#: The key of a model's ``config.json`` that declares its own wording (see
#: :func:`declared_templates`).
DECLARED_KEY = "egm_prompts"
_SENT = "{sent}"

MAX_PROMPT_CHARS = 500

#: C0/C1 control characters except the ASCII whitespace ones (those become spaces), lone
#: surrogates (not encodable), and bidi overrides/isolates (they make text display differently
#: from what the model reads). Other format characters such as ZWJ stay: scripts and emoji use
#: them.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
#: Markup the chat templates or tokenizers treat as structure: the grounding tags of the EGM
#: and InternVL prompts, the think tags, InternVL's image tags and ``<|...|>`` special tokens.
_MARKUP = re.compile(r"<\s*/?\s*(?:ref|box|quad|think|img|IMG_CONTEXT)\s*>|<\||\|>", re.I)


def build_prompt(
    sent: str,
    mode: Mode,
    family: Family = Family.QWEN3_VL,
    style: PromptStyle = PromptStyle.EGM,
    declared: Mapping[Mode, str] | None = None,
) -> str:
    """The user text for referring expression ``sent`` (already through
    :func:`validate_command`): the EGM wording of ``family``, or the plain-Qwen3-VL one for
    ``style`` base. ``declared`` (from :func:`declared_templates`) replaces the EGM wording
    for a model trained on other words."""
    mode = Mode(mode)
    if PromptStyle(style) is PromptStyle.BASE:
        template = _BASE[mode]
    elif declared and mode in declared:
        template = declared[mode]
    else:
        template = _EGM[Family(family)][mode]
    # replace, not format: braces in the expression stay text.
    return template.replace(_SENT, sent)


def declared_templates(model_config: Mapping | None) -> dict[Mode, str] | None:
    """The wording a model folder declares in its ``config.json``:
    ``"egm_prompts": {"visible": "...{sent}...", "amodal": "...{sent}..."}`` (either key may be
    absent). ``None`` when it declares none; ``ValueError`` for a malformed declaration, so a
    typo is not silently replaced by another wording."""
    raw = (model_config or {}).get(DECLARED_KEY)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"{DECLARED_KEY} must map visible/amodal to templates, got {raw!r}")
    out = {}
    for key, template in raw.items():
        mode = Mode.parse(key)
        if not isinstance(template, str) or template.count(_SENT) != 1:
            raise ValueError(f"{DECLARED_KEY}[{key!r}] must hold {_SENT} once: {template!r}")
        out[mode] = template
    return out


def validate_command(text: str, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """The referring expression, cleaned; ``GroundingError(invalid_input)`` when unusable.

    Control characters are refused; markup that could close the prompt's ``<ref>`` or inject
    special tokens is replaced by a space (not deleted, so pieces cannot join into a new tag);
    whitespace runs become one space. The length bound applies to the cleaned text: long
    prompts cost tokens and can push the image out of the context."""
    if not isinstance(text, str):
        raise GroundingError(Status.INVALID_INPUT, "the command must be text")
    if _CONTROL.search(text):
        raise GroundingError(Status.INVALID_INPUT, "command contains control characters")
    cleaned = " ".join(_MARKUP.sub(" ", text).split())
    if not cleaned:
        raise GroundingError(Status.INVALID_INPUT, "empty command")
    if len(cleaned) > max_chars:
        raise GroundingError(
            Status.INVALID_INPUT, f"command too long: {len(cleaned)} characters (max {max_chars})"
        )
    return cleaned
