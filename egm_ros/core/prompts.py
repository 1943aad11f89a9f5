"""Prompts exactly as the EGM checkpoints were trained and evaluated (the authors' evaluation
script), and the plain-Qwen3-VL prompt for base models. The message layout (image first, then
this text, no system prompt) is the engines' job."""

from __future__ import annotations

import enum
import unicodedata

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
#: The authors have no base-model amodal prompt; this asks for the full extent in the same form.
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


def build_prompt(
    sent: str, mode: Mode, family: Family = Family.QWEN3_VL, style: PromptStyle = PromptStyle.EGM
) -> str:
    """The user text for referring expression ``sent``. The EGM wording is InternVL's own
    grounding prompt too, so all families share it; the answer format differs by family."""
    del family  # the same wording for every family; kept for call-site clarity
    return _TEMPLATES[(PromptStyle(style), Mode(mode))].format(sent=sent)


def validate_command(text: str, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """The referring expression, cleaned; ``GroundingError(invalid_input)`` when unusable.

    Tags that would break the prompt's ``<ref>`` markup are removed, control characters are
    refused, and the length is bounded (long prompts cost tokens and can push the image out of
    the context)."""
    if not isinstance(text, str):
        raise GroundingError(Status.INVALID_INPUT, "the command must be text")
    if len(text) > max_chars:
        raise GroundingError(
            Status.INVALID_INPUT, f"command too long: {len(text)} characters (max {max_chars})"
        )
    cleaned = " ".join(text.split())
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in cleaned):
        raise GroundingError(Status.INVALID_INPUT, "command contains control characters")
    for tag in ("<ref>", "</ref>", "<box>", "</box>", "<think>", "</think>", "<|"):
        cleaned = cleaned.replace(tag, " ")
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise GroundingError(Status.INVALID_INPUT, "empty command")
    return cleaned
