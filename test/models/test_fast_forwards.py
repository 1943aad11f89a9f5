"""The fast forwards compute what the modules compute: the Qwen-VL patch embedding as a matrix
product (forward and backward) and RMSNorm as torch's fused op; weights, saved folder and
other modules stay as they were."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ml
torch = pytest.importorskip("torch")


def _model(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, local_files_only=True)
    return model.eval()


def _pixels(model, images: int = 2, seed: int = 0):
    """Flattened patches of ``images`` 4 x 6-patch images, as the processor makes them."""
    conv = model.model.visual.patch_embed.proj
    grid = torch.tensor([[1, 4, 6]] * images)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(int(grid.prod(1).sum()), conv.weight[0].numel(), generator=gen), grid


def test_vision_tower_output_and_gradients_match_the_convolution(tiny_model_dir) -> None:
    from egm_ros.models.fast_forwards import use_linear_patch_embedding

    conv_model, linear_model = _model(tiny_model_dir), _model(tiny_model_dir)
    assert use_linear_patch_embedding(linear_model) == 1
    pixels, grid = _pixels(conv_model)
    outs, grads = [], []
    for model in (conv_model, linear_model):
        out = model.model.visual(pixels, grid_thw=grid).pooler_output
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append(model.model.visual.patch_embed.proj.weight.grad.clone())
    assert outs[0].shape == outs[1].shape
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-5)


def test_weights_and_saved_folder_are_unchanged(tiny_model_dir, tmp_path) -> None:
    from safetensors.torch import load_file

    from egm_ros.models.fast_forwards import use_linear_patch_embedding

    model = _model(tiny_model_dir)
    model.save_pretrained(tmp_path / "before")
    assert use_linear_patch_embedding(model) == 1
    model.save_pretrained(tmp_path / "after")
    before, after = (load_file(tmp_path / d / "model.safetensors") for d in ("before", "after"))
    assert set(after) == set(before)
    proj = "model.visual.patch_embed.proj.weight"
    assert after[proj].dim() == 5  # still the Conv3d's own parameter
    for key, value in before.items():
        assert torch.equal(after[key], value), key


def test_a_convolution_that_sees_more_than_one_patch_is_left_alone() -> None:
    from egm_ros.models.fast_forwards import use_linear_patch_embedding

    class Embed(torch.nn.Module):
        patch_size, temporal_patch_size, in_channels = 4, 2, 3

        def __init__(self, **conv) -> None:
            super().__init__()
            self.proj = torch.nn.Conv3d(3, 8, kernel_size=(2, 4, 4), **conv)

    overlapping = torch.nn.Sequential(Embed(stride=(2, 2, 2)), Embed(stride=2, padding=1))
    assert use_linear_patch_embedding(overlapping) == 0
    assert "forward" not in vars(overlapping[0])
    assert use_linear_patch_embedding(torch.nn.Sequential(Embed(stride=(2, 4, 4)))) == 1


def test_fused_rms_norm_gives_the_language_models_numbers(tiny_model_dir) -> None:
    """Every Qwen3-VL RMSNorm (17 in the tiny model: 4 per layer and the final one) changes;
    the logits of a text forward agree with transformers' own, in float32 and in bfloat16
    (which keeps transformers' forward)."""
    from egm_ros.models.fast_forwards import use_fused_rms_norm

    ids = torch.randint(5, 200, (2, 24), generator=torch.Generator().manual_seed(1))
    for dtype in (torch.float32, torch.bfloat16):
        plain, fused = _model(tiny_model_dir).to(dtype), _model(tiny_model_dir).to(dtype)
        norms = [m for m in fused.modules() if type(m).__name__.endswith("RMSNorm")]
        assert use_fused_rms_norm(fused) == len(norms) > 0
        with torch.inference_mode():
            want, got = (m(input_ids=ids).logits for m in (plain, fused))
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        if dtype is torch.bfloat16:
            assert torch.equal(got, want)  # the same forward, not only close


def test_a_norm_without_the_qwen_layout_is_left_alone() -> None:
    from egm_ros.models.fast_forwards import use_fused_rms_norm

    class OtherRMSNorm(torch.nn.Module):  # epsilon under another name
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(8))
            self.eps = 1e-6

    assert use_fused_rms_norm(torch.nn.Sequential(OtherRMSNorm(), torch.nn.LayerNorm(8))) == 0
