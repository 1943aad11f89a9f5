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
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(f.value for f in cls)
            raise ValueError(f"unknown model family {value!r}; choose one of {names}") from None


def is_relative(family: Family) -> bool:
    """True when the family answers in 0..1000 relative coordinates."""
    return family is not Family.QWEN2_5_VL


_MODEL_TYPES = {
    "qwen3_vl": Family.QWEN3_VL,
    "qwen3_vl_moe": Family.QWEN3_VL,
    "qwen2_5_vl": Family.QWEN2_5_VL,
    "qwen2_vl": Family.QWEN2_5_VL,
    "internvl": Family.INTERNVL3,
    "internvl_chat": Family.INTERNVL3,
}


def detect_family(config: dict | None = None, model_name: str = "") -> Family:
    """The family from a Hugging Face ``config.json`` (``model_type``, ``architectures``), else
    from the model's name, else ``qwen3_vl`` (what EGM checkpoints are)."""
    if config:
        model_type = str(config.get("model_type", "")).lower()
        if model_type in _MODEL_TYPES:
            return _MODEL_TYPES[model_type]
        architectures = " ".join(config.get("architectures") or []).lower()
        for needle, family in (
            ("qwen3vl", Family.QWEN3_VL),
            ("qwen2_5_vl", Family.QWEN2_5_VL),
            ("qwen2vl", Family.QWEN2_5_VL),
            ("internvl", Family.INTERNVL3),
        ):
            if needle in architectures.replace(".", "_"):
                return family
    name = model_name.lower().replace("-", "").replace("_", "").replace(".", "")
    if "internvl" in name:
        return Family.INTERNVL3
    if "qwen25vl" in name or "qwen2vl" in name:
        return Family.QWEN2_5_VL
    return Family.QWEN3_VL


#: Qwen2.5-VL image processor defaults: 28-pixel patches after merging, and its pixel bounds.
QWEN2_5_FACTOR = 28
QWEN2_5_MIN_PIXELS = 56 * 56
QWEN2_5_MAX_PIXELS = 28 * 28 * 1280


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN2_5_FACTOR,
    min_pixels: int = QWEN2_5_MIN_PIXELS,
    max_pixels: int = QWEN2_5_MAX_PIXELS,
) -> tuple[int, int]:
    """(height, width) the Qwen2-VL/2.5-VL image processor resizes an image to: both sides
    rounded to multiples of ``factor``, the pixel count brought within [min, max] keeping the
    aspect ratio. Same arithmetic as ``smart_resize`` in transformers'
    ``models/qwen2_vl/image_processing_qwen2_vl.py``."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
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
    """(width, height) of the image the model sees, for families whose boxes are in its pixels
    (qwen2_5_vl); the size itself for the relative-coordinate families."""
    if family is Family.QWEN2_5_VL:
        h, w = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
        return w, h
    return width, height
