"""A model's own image-processor pixel limit, and a configured ``max_pixels`` that may lower it
but never raise it.

A checkpoint's processor config says how many pixels its vision encoder takes (EGM-Tiny:
224 x 224; transformers' Qwen2-VL processor defaults to 28 x 28 x 1280 = 1,003,520). Writing the
node's or the CLI's ``max_pixels`` into it unchecked fed the 224 x 224 model 640 x 480 frames at
full size: 300 visual tokens instead of 48.

Qwen2-VL-style image processors (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) keep the limit as a pixel count
in ``size["longest_edge"]`` (transformers 5) or also as a ``max_pixels`` attribute (transformers
4.5x); other processors (InternVL's tiles) have no such limit and are left alone.
"""

from __future__ import annotations

from typing import Any

from egm_ros.core.images import effective_max_pixels


def own_max_pixels(image_processor: Any) -> int | None:
    """The most pixels ``image_processor`` resizes an image to, as its config sets it; None
    for a processor without a pixel-count limit."""
    value = getattr(image_processor, "max_pixels", None)
    if not value and type(image_processor).__name__.startswith("Qwen2VLImageProcessor"):
        value = _size_value(getattr(image_processor, "size", None), "longest_edge")
    return int(value) if value else None


def lower_max_pixels(image_processor: Any, configured: int | None) -> int | None:
    """Set ``image_processor``'s limit to ``configured`` where that is lower than its own (never
    higher); the limit it has now, or None when it has none (then ``configured`` is left to the
    grounder's resize, which happens before the processor in any case)."""
    own = own_max_pixels(image_processor)
    if own is None:
        return None
    limit = effective_max_pixels(own, configured)
    if limit is not None and limit < own:
        if getattr(image_processor, "max_pixels", None):
            image_processor.max_pixels = limit
        size: Any = getattr(image_processor, "size", None)
        if _size_value(size, "longest_edge"):  # a dict, or a SizeDict (item assignment too)
            size["longest_edge"] = limit
    return limit


def _size_value(size: Any, key: str) -> Any:
    """``size[key]`` of a dict or a transformers ``SizeDict``; None when absent."""
    if isinstance(size, dict):
        return size.get(key)
    return getattr(size, key, None)


def mm_processor_kwargs(own: int | None, configured: int | None) -> dict | None:
    """``mm_processor_kwargs`` for an engine whose library builds the processor itself (vLLM,
    TensorRT-LLM; both let ``max_pixels`` there override the checkpoint's): ``max_pixels`` only
    where it lowers the checkpoint's own limit ``own``."""
    limit = effective_max_pixels(own, configured)
    if own is None or limit is None or limit >= own:
        return None
    return {"max_pixels": limit}


def checkpoint_max_pixels(model: str, offline: bool) -> int | None:
    """The own limit of the image processor ``model`` (a folder or a hub name) declares; None
    when it declares none or cannot be read here."""
    try:
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(model, local_files_only=offline)
    except Exception:  # noqa: BLE001 - unreadable here: the engine's library reports it
        return None
    return own_max_pixels(processor)
