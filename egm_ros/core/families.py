"""Model families: how a model writes boxes, and how to tell which family a model is.

- ``qwen3_vl``: EGM-Qwen3-VL-8B/4B and plain Qwen3-VL. JSON ``bbox_2d`` in 0..1000 relative
  coordinates.
- ``qwen2_5_vl``: JSON ``bbox_2d`` in absolute pixels **of the image its processor resized**
  (``smart_resize``), so boxes map back through that resize, not the original size.
- ``internvl3``: ``<ref>..</ref><box>[[x1, y1, x2, y2]]</box>`` in 0..1000.
"""

from __future__ import annotations

import enum
import math


class Family(enum.StrEnum):
    QWEN3_VL = "qwen3_vl"
    QWEN2_5_VL = "qwen2_5_vl"
    INTERNVL3 = "internvl3"

    @classmethod
    def parse(cls, value: str | Family) -> Family:
        """Accept a family name in any case; ``ValueError`` naming the choices otherwise."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(f.value for f in cls)
            raise ValueError(f"unknown model family {value!r}; choose one of {names}") from None


class CoordinateSpace(enum.StrEnum):
    """What the numbers in a model's box mean."""

    #: 0..1000 along each side of the image, whatever size the processor resized it to.
    RELATIVE_1000 = "relative_1000"
    #: Pixels of the image as the processor resized it (see :func:`model_input_size`).
    MODEL_PIXELS = "model_pixels"


def coordinate_space(family: Family) -> CoordinateSpace:
    """Qwen2.5-VL was trained on absolute pixel boxes; Qwen3-VL and InternVL3 on 0..1000."""
    if Family(family) is Family.QWEN2_5_VL:
        return CoordinateSpace.MODEL_PIXELS
    return CoordinateSpace.RELATIVE_1000


_MODEL_TYPES = {
    "qwen3_vl": Family.QWEN3_VL,
    "qwen3_vl_moe": Family.QWEN3_VL,
    # Qwen2-VL (not 2.5) answers in 0..1000 like Qwen3-VL, not in pixels like Qwen2.5-VL.
    "qwen2_vl": Family.QWEN3_VL,
    "qwen2_5_vl": Family.QWEN2_5_VL,
    "internvl": Family.INTERNVL3,
    "internvl_chat": Family.INTERNVL3,
}

#: Substrings of a lower-cased name with ``-``, ``_``, ``.`` removed; first match wins.
_NAME_HINTS = (
    ("internvl", Family.INTERNVL3),
    ("qwen25vl", Family.QWEN2_5_VL),
)


def _squash(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(".", "")


def detect_family(config: dict | None = None, model_name: str = "") -> Family:
    """The family from a Hugging Face ``config.json`` (``model_type``, else ``architectures``),
    else from the model's name, else ``qwen3_vl`` (what the EGM checkpoints are)."""
    if config:
        model_type = str(config.get("model_type", "")).lower()
        if model_type in _MODEL_TYPES:
            return _MODEL_TYPES[model_type]
        architectures = _squash(" ".join(str(a) for a in config.get("architectures") or []))
        for hint, family in _NAME_HINTS:
            if hint in architectures:
                return family
    squashed = _squash(model_name)
    for hint, family in _NAME_HINTS:
        if hint in squashed:
            return family
    return Family.QWEN3_VL


#: Qwen2-VL/2.5-VL image processor defaults (transformers ``Qwen2VLImageProcessor``): 14-pixel
#: patches merged 2x2, and its pixel bounds. Checkpoints may set other bounds in their
#: ``preprocessor_config.json``; pass those to :func:`model_input_size` when they differ.
QWEN2_5_FACTOR = 28
QWEN2_5_MIN_PIXELS = 56 * 56
QWEN2_5_MAX_PIXELS = 28 * 28 * 1280
#: The processor refuses images more elongated than this.
QWEN2_5_MAX_RATIO = 200


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN2_5_FACTOR,
    min_pixels: int = QWEN2_5_MIN_PIXELS,
    max_pixels: int = QWEN2_5_MAX_PIXELS,
) -> tuple[int, int]:
    """(height, width) the Qwen2-VL/2.5-VL image processor resizes an image to.

    Reimplements the arithmetic of ``smart_resize`` in transformers'
    ``src/transformers/models/qwen2_vl/image_processing_qwen2_vl.py``: both sides rounded to
    a multiple of ``factor``; if that exceeds ``max_pixels`` the image is scaled down by
    ``sqrt(h * w / max_pixels)`` and floored to the factor (at least one factor); if it is
    below ``min_pixels`` scaled up by ``sqrt(min_pixels / (h * w))`` and ceiled. Python's
    ``round`` (half to even) is the processor's too. Like the processor, raises
    ``ValueError`` beyond a 200:1 aspect ratio."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > QWEN2_5_MAX_RATIO:
        raise ValueError(
            f"aspect ratio of {width}x{height} exceeds {QWEN2_5_MAX_RATIO}:1, "
            "which the Qwen2.5-VL processor refuses"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def model_input_size(
    family: Family,
    width: int,
    height: int,
    *,
    min_pixels: int = QWEN2_5_MIN_PIXELS,
    max_pixels: int = QWEN2_5_MAX_PIXELS,
) -> tuple[int, int]:
    """(width, height) of the image whose pixels the model's boxes are in: the processor's
    resize for ``qwen2_5_vl``; the size itself for the 0..1000 families (their numbers do not
    depend on the resize)."""
    if coordinate_space(family) is CoordinateSpace.MODEL_PIXELS:
        h, w = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
        return w, h
    return width, height
