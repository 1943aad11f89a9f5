"""The project-built tiny Qwen3-VL: a normal model folder that transformers loads offline."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.ml


def test_folder_loads_offline_with_the_auto_classes(tiny_model_dir) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, local_files_only=True)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen3_vl"
    tok = processor.tokenizer
    assert config["image_token_id"] == tok.convert_tokens_to_ids("<|image_pad|>")
    assert config["vision_start_token_id"] == tok.convert_tokens_to_ids("<|vision_start|>")


def test_chat_template_is_qwen3_vl_thinking_layout(tiny_model_dir) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir, local_files_only=True)
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "find <ref>a</ref>"}],
        }
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
        "find <ref>a</ref><|im_end|>\n<|im_start|>assistant\n<think>\n"
    )


def test_think_tokens_survive_decoding_and_coordinates_are_single_tokens(tiny_model_dir) -> None:
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(tiny_model_dir, local_files_only=True).tokenizer
    text = 'a</think>[{"bbox_2d": [123, 4, 1000, 0]}] 2026'
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == text
    for number in ("0", "4", "123", "999", "1000"):
        assert tok.convert_ids_to_tokens(tok.encode(number, add_special_tokens=False)) == [number]
    # Beyond 1000 a number still round-trips, in pieces.
    assert len(tok.encode("2026", add_special_tokens=False)) == 2


def test_number_embeddings_start_ordered_by_value() -> None:
    pytest.importorskip("torch")
    import torch

    from egm_ros.models.tiny_qwen3_vl import build_model, build_processor, number_token_ids

    processor = build_processor()
    model = build_model(processor.tokenizer, seed=0)
    table = model.get_input_embeddings().weight[number_token_ids(processor.tokenizer)]
    unit = torch.nn.functional.normalize(table, dim=1)
    similarity = [(unit[500] @ unit[500 + d]).item() for d in (1, 5, 50, 450)]
    assert similarity[0] > 0.9
    assert similarity == sorted(similarity, reverse=True)  # falls with the distance
    assert similarity[1] > similarity[3] + 0.3
    assert abs(table.std().item() - model.config.text_config.initializer_range) < 0.005


def test_same_seed_same_weights(tmp_path) -> None:
    pytest.importorskip("torch")
    from egm_ros.models.tiny_qwen3_vl import build_model, build_processor

    processor = build_processor()
    a = build_model(processor.tokenizer, seed=3).state_dict()
    b = build_model(processor.tokenizer, seed=3).state_dict()
    c = build_model(processor.tokenizer, seed=4).state_dict()
    key = next(k for k in a if k.endswith("embed_tokens.weight"))
    assert (a[key] == b[key]).all() and not (a[key] == c[key]).all()
