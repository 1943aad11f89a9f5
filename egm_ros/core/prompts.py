"""Prompts exactly as the EGM checkpoints were trained and evaluated (the authors' evaluation
script), and the plain-Qwen3-VL prompt for base models. The message layout (image first, then
this text, no system prompt) is the engines' job."""

from __future__ import annotations

import enum
import re

from egm_ros.core.families import Family
from egm_ros.core.types import GroundingError, Mode, Status


class PromptStyle(enum.StrEnum):
    EGM = "egm"  # EGM checkpoints (and InternVL's own grounding prompt)
    BASE = "base"  # plain Qwen3-VL models


EGM_VISIBLE = (
    "Please provide the bounding box coordinate of the region this sentence describes: "
    "<ref>{sent}</ref>"
)
EGM_AMODAL = (
    "Please provide the amodal bounding box coordinate of the region this sentence describes: "
    "<ref>{sent}</ref>"
)
BASE_VISIBLE = "Locate {sent}, output its bbox coordinates using JSON format"
#: The authors have no base-model amodal prompt. This keeps their base wording and spells out
#: what "amodal" means, since a base model was never taught the word.
BASE_AMODAL = (
    "Locate {sent}, including any part hidden behind other objects, output its full (amodal) "
    "bbox coordinates using JSON format"
)

_TEMPLATES = {
    (PromptStyle.EGM, Mode.VISIBLE): EGM_VISIBLE,
    (PromptStyle.EGM, Mode.AMODAL): EGM_AMODAL,
    (PromptStyle.BASE, Mode.VISIBLE): BASE_VISIBLE,
    (PromptStyle.BASE, Mode.AMODAL): BASE_AMODAL,
}

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
    sent: str, mode: Mode, family: Family = Family.QWEN3_VL, style: PromptStyle = PromptStyle.EGM
) -> str:
    """The user text for referring expression ``sent`` (already through
    :func:`validate_command`). The EGM wording is InternVL's own grounding prompt too, so every
    family shares it; only the answer format differs by family."""
    del family  # the same wording for every family; kept so call sites state the family
    return _TEMPLATES[(PromptStyle(style), Mode(mode))].format(sent=sent)


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
