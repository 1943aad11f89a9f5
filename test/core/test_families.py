"""Family detection and the Qwen2.5-VL processor resize."""

from __future__ import annotations

import pytest

from egm_ros.core.families import Family, detect_family, model_input_size, smart_resize


@pytest.mark.parametrize(
    ("config", "name", "family"),
    [
        ({"model_type": "qwen3_vl"}, "", Family.QWEN3_VL),
        ({"model_type": "qwen3_vl_moe"}, "", Family.QWEN3_VL),
        ({"model_type": "qwen2_5_vl"}, "", Family.QWEN2_5_VL),
        ({"model_type": "internvl_chat"}, "", Family.INTERNVL3),
        ({"architectures": ["Qwen2_5_VLForConditionalGeneration"]}, "", Family.QWEN2_5_VL),
        ({"architectures": ["InternVLChatModel"]}, "", Family.INTERNVL3),
        (None, "JamesZGQ/EGM-8B", Family.QWEN3_VL),
        (None, "OpenGVLab/InternVL3-8B", Family.INTERNVL3),
        (None, "Qwen/Qwen2.5-VL-7B-Instruct", Family.QWEN2_5_VL),
        (None, "", Family.QWEN3_VL),
        ({"model_type": "llama"}, "my-internvl-finetune", Family.INTERNVL3),
    ],
)
def test_detect_family(config, name: str, family: Family) -> None:
    assert detect_family(config, name) is family


def test_parse_family_names() -> None:
    assert Family.parse(" QWEN2_5_VL ") is Family.QWEN2_5_VL
    with pytest.raises(ValueError, match="qwen3_vl, qwen2_5_vl, internvl3"):
        Family.parse("llava")


@pytest.mark.parametrize(
    ("h", "w", "expected"),
    [
        (500, 1000, (504, 1008)),  # rounded to multiples of 28, within bounds
        (480, 640, (476, 644)),
        (2160, 3840, (728, 1316)),  # over 1280 * 28 * 28 pixels: scaled down, floored
        (10, 10, (56, 56)),  # under 56 * 56: scaled up, ceiled
    ],
)
def test_smart_resize_matches_the_processor_arithmetic(h: int, w: int, expected) -> None:
    assert smart_resize(h, w) == expected
    rh, rw = expected
    assert rh % 28 == 0 and rw % 28 == 0
    assert 56 * 56 <= rh * rw <= 28 * 28 * 1280


def test_model_input_size_only_changes_pixel_families() -> None:
    assert model_input_size(Family.QWEN2_5_VL, 1000, 500) == (1008, 504)
    assert model_input_size(Family.QWEN3_VL, 1000, 500) == (1000, 500)
    assert model_input_size(Family.INTERNVL3, 1000, 500) == (1000, 500)
