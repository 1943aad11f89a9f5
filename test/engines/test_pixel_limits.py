"""A configured max_pixels lowers a checkpoint's own image-processor limit and never raises it,
on a real transformers Qwen2-VL image processor (the one EGM-Tiny and the Qwen-VL checkpoints
use) and on the transformers-4 form of the same limit."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from egm_ros.engines.pixel_limits import lower_max_pixels, mm_processor_kwargs, own_max_pixels

pytestmark = pytest.mark.ml
OWN = 224 * 224  # EGM-Tiny's own limit: 49 visual tokens of 32 x 32 pixels


def qwen_processor():
    transformers = pytest.importorskip("transformers")
    return transformers.Qwen2VLImageProcessor(
        patch_size=16, merge_size=2, size={"shortest_edge": OWN // 4, "longest_edge": OWN}
    )


def visual_tokens(processor, width: int, height: int) -> int:
    out = processor(images=[np.zeros((height, width, 3), np.uint8)], return_tensors="np")
    t, h, w = out["image_grid_thw"][0]
    return int(t * h * w) // 4  # 2 x 2 patches merge into one token


def test_a_larger_configured_limit_leaves_the_models_own() -> None:
    processor = qwen_processor()
    assert own_max_pixels(processor) == OWN
    assert lower_max_pixels(processor, 1_003_520) == OWN  # the node's default
    assert own_max_pixels(processor) == OWN
    assert visual_tokens(processor, 640, 480) == 48  # 256 x 192, not 300 tokens at 640 x 480
    assert visual_tokens(processor, 224, 224) == 49


@pytest.mark.parametrize("configured", [None, 0])
def test_no_configured_limit_leaves_the_models_own(configured) -> None:
    processor = qwen_processor()
    assert lower_max_pixels(processor, configured) == OWN
    assert visual_tokens(processor, 640, 480) == 48


def test_a_smaller_configured_limit_lowers_it() -> None:
    processor = qwen_processor()
    assert lower_max_pixels(processor, 20_000) == 20_000
    assert own_max_pixels(processor) == 20_000
    assert visual_tokens(processor, 640, 480) == 15  # 160 x 96


def test_the_transformers_4_attribute_is_lowered_too() -> None:
    old_style = SimpleNamespace(
        max_pixels=OWN, size={"shortest_edge": OWN // 4, "longest_edge": OWN}
    )
    assert lower_max_pixels(old_style, 1_003_520) == OWN and old_style.max_pixels == OWN
    assert lower_max_pixels(old_style, 20_000) == 20_000
    assert old_style.max_pixels == old_style.size["longest_edge"] == 20_000


def test_a_processor_without_a_pixel_limit_is_left_alone() -> None:
    tiles = SimpleNamespace(size={"height": 448, "width": 448})  # e.g. InternVL's tiles
    assert own_max_pixels(tiles) is None
    assert lower_max_pixels(tiles, 1_003_520) is None
    assert tiles.size == {"height": 448, "width": 448} and not hasattr(tiles, "max_pixels")


@pytest.mark.parametrize(
    ("own", "configured", "kwargs"),
    [
        (OWN, 1_003_520, None),  # would raise the checkpoint's limit: not sent
        (OWN, None, None),
        (OWN, OWN, None),
        (OWN, 20_000, {"max_pixels": 20_000}),
        (12_845_056, 1_003_520, {"max_pixels": 1_003_520}),  # Qwen2.5-VL's own 16M
        (None, 1_003_520, None),  # unknown limit: the grounder's resize applies it
    ],
)
def test_engines_that_build_their_own_processor_send_only_a_lower_limit(
    own, configured, kwargs
) -> None:
    assert mm_processor_kwargs(own, configured) == kwargs
