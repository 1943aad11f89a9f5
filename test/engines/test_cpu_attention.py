"""The CPU attention function (grouped-query attention left to torch under a padding mask)
computes what transformers' own SDPA attention computes, in isolation and inside the model."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ml
torch = pytest.importorskip("torch")


class Layer(torch.nn.Module):
    """The attributes transformers' attention functions read from the attention module."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


@pytest.mark.parametrize(
    ("q_len", "masked"),
    [(1, True), (1, False), (7, False), (7, True)],  # decode / prefill, padded batch or not
)
def test_same_output_as_transformers_sdpa(q_len: int, masked: bool) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from egm_ros.engines.cpu_attention import cpu_gqa_sdpa

    gen = torch.Generator().manual_seed(0)
    batch, heads, kv_heads, kv_len, dim = 3, 4, 2, 12, 16
    query = torch.randn(batch, heads, q_len, dim, generator=gen)
    key = torch.randn(batch, kv_heads, kv_len if q_len == 1 else q_len, dim, generator=gen)
    value = torch.randn_like(key)
    mask = None
    if masked:  # left padding: row i starts i positions late, causal within
        k_len = key.shape[2]
        causal = torch.ones(q_len, k_len, dtype=torch.bool).tril(k_len - q_len)
        mask = causal.expand(batch, 1, q_len, k_len).clone()
        for row in range(batch):
            mask[row, :, :, :row] = False
    layer = Layer(heads // kv_heads)
    ours, _ = cpu_gqa_sdpa(layer, query, key, value, mask, scaling=dim**-0.5)
    theirs, _ = sdpa_attention_forward(layer, query, key, value, mask, scaling=dim**-0.5)
    assert ours.shape == theirs.shape == (batch, q_len, heads, dim)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_the_model_scores_a_padded_batch_as_with_transformers_sdpa(tiny_model_dir) -> None:
    """The tiny Qwen3-VL (grouped-query attention) on two prompts of different lengths, left
    padded: the logits of every real token agree with the model loaded with ``sdpa``."""
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from egm_ros.engines.cpu_attention import register

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    processor.tokenizer.padding_side = "left"
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))] * 2
    texts = [
        f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{t}<|im_end|>\n"
        for t in ("the mug", "the second red mug from the left")
    ]
    inputs = processor(text=texts, images=images, padding=True, return_tensors="pt")
    logits = {}
    for name in ("sdpa", register()):
        model = AutoModelForImageTextToText.from_pretrained(
            tiny_model_dir, attn_implementation=name
        ).eval()
        assert (
            model.config.text_config.num_key_value_heads
            < model.config.text_config.num_attention_heads
        )
        with torch.inference_mode():
            logits[name] = model(**inputs).logits
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(logits[register()][real], logits["sdpa"][real], rtol=1e-4, atol=1e-4)
