"""Family detection, coordinate spaces and the Qwen2.5-VL processor resize (hand-computed)."""

from __future__ import annotations

import pytest

from egm_ros.core.families import (
    CoordinateSpace,
    Family,
    coordinate_space,
    detect_family,
    model_input_size,
    smart_resize,
)


@pytest.mark.parametrize(
    ("config", "name", "family"),
    [
        ({"model_type": "qwen3_vl"}, "", Family.QWEN3_VL),
        ({"model_type": "qwen3_vl_moe"}, "", Family.QWEN3_VL),
        ({"model_type": "qwen2_5_vl"}, "", Family.QWEN2_5_VL),
        ({"model_type": "qwen2_vl"}, "", Family.QWEN3_VL),  # 0..1000 like Qwen3-VL
        ({"model_type": "internvl"}, "", Family.INTERNVL3),
        ({"model_type": "internvl_chat"}, "", Family.INTERNVL3),
        ({"architectures": ["Qwen2_5_VLForConditionalGeneration"]}, "", Family.QWEN2_5_VL),
        ({"architectures": ["InternVLChatModel"]}, "", Family.INTERNVL3),
        ({"architectures": ["Qwen3VLForConditionalGeneration"]}, "x", Family.QWEN3_VL),
        (None, "JamesZGQ/EGM-8B", Family.QWEN3_VL),
        (None, "JamesZGQ/EGM-4B-SFT", Family.QWEN3_VL),
        (None, "OpenGVLab/InternVL3-8B", Family.INTERNVL3),
        (None, "Qwen/Qwen2.5-VL-7B-Instruct", Family.QWEN2_5_VL),
        (None, "/models/qwen2_5_vl_3b", Family.QWEN2_5_VL),
        (None, "Qwen/Qwen3-VL-8B-Thinking", Family.QWEN3_VL),
        (None, "Qwen/Qwen2-VL-7B-Instruct", Family.QWEN3_VL),
        (None, "", Family.QWEN3_VL),
        ({"model_type": "llama"}, "my-internvl-finetune", Family.INTERNVL3),
        ({"model_type": "qwen2_5_vl"}, "OpenGVLab/InternVL3-8B", Family.QWEN2_5_VL),
    ],
)
def test_detect_family(config, name: str, family: Family) -> None:
    assert detect_family(config, name) is family


def test_parse_family_names() -> None:
    assert Family.parse(" QWEN2_5_VL ") is Family.QWEN2_5_VL
    assert Family.parse(Family.INTERNVL3) is Family.INTERNVL3
    with pytest.raises(ValueError, match="qwen3_vl, qwen2_5_vl, internvl3"):
        Family.parse("llava")


def test_coordinate_spaces() -> None:
    assert coordinate_space(Family.QWEN3_VL) is CoordinateSpace.RELATIVE_1000
    assert coordinate_space(Family.INTERNVL3) is CoordinateSpace.RELATIVE_1000
    assert coordinate_space(Family.QWEN2_5_VL) is CoordinateSpace.MODEL_PIXELS
    assert coordinate_space("qwen2_5_vl") is CoordinateSpace.MODEL_PIXELS


@pytest.mark.parametrize(
    ("h", "w", "kwargs", "expected"),
    [
        # round(17.86) = 18, round(35.71) = 36; 504 * 1008 is within the bounds.
        (500, 1000, {}, (504, 1008)),
        # round(17.14) = 17, round(22.86) = 23.
        (480, 640, {}, (476, 644)),
        # 2156 * 3836 > 1280 * 784: beta = sqrt(8294400 / 1003520) = 2.8750;
        # floor(2160 / 2.875 / 28) = 26, floor(3840 / 2.875 / 28) = 47.
        (2160, 3840, {}, (728, 1316)),
        # Rounds to 0 x 0 < 56 * 56: beta = sqrt(3136 / 100) = 5.6, ceil(56 / 28) = 2.
        (10, 10, {}, (56, 56)),
        # The height rounds to 0, so the minimum branch rescales *both* sides:
        # beta = sqrt(3136 / 33800) = 0.30460; ceil(3.96 / 28) = 1, ceil(791.96 / 28) = 29.
        (13, 2600, {}, (28, 812)),
        # A smaller budget: beta = sqrt(500000 / 200704) = 1.5784;
        # floor(316.78 / 28) = 11, floor(633.57 / 28) = 22.
        (500, 1000, {"max_pixels": 256 * 28 * 28}, (308, 616)),
        # Half-way rounds to even like the processor's Python round: 42 / 28 = 1.5 -> 2,
        # 70 / 28 = 2.5 -> 2.
        (42, 70, {"min_pixels": 1}, (56, 56)),
    ],
)
def test_smart_resize_matches_the_processor_arithmetic(h: int, w: int, kwargs, expected) -> None:
    assert smart_resize(h, w, **kwargs) == expected


def test_smart_resize_refuses_what_the_processor_refuses() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2100)
    with pytest.raises(ValueError, match="positive"):
        smart_resize(0, 100)


def test_model_input_size_only_changes_pixel_families() -> None:
    assert model_input_size(Family.QWEN2_5_VL, 1000, 500) == (1008, 504)
    assert model_input_size(Family.QWEN2_5_VL, 3840, 2160) == (1316, 728)
    assert model_input_size(Family.QWEN2_5_VL, 1000, 500, max_pixels=256 * 28 * 28) == (616, 308)
    assert model_input_size(Family.QWEN3_VL, 1000, 500) == (1000, 500)
    assert model_input_size(Family.INTERNVL3, 1000, 500) == (1000, 500)
