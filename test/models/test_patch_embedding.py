"""The Qwen-VL patch embedding as a matrix product computes what its Conv3d computes, forward
and backward, leaves the weights and the saved folder as they were, and touches nothing else."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ml
torch = pytest.importorskip("torch")


def _vision(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, local_files_only=True)
    return model.eval()


def _pixels(model, images: int = 2, seed: int = 0):
    """Flattened patches of ``images`` 4 x 6-patch images, as the processor makes them."""
    vision = model.model.visual
    conv = vision.patch_embed.proj
    grid = torch.tensor([[1, 4, 6]] * images)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(int(grid.prod(1).sum()), conv.weight[0].numel(), generator=gen), grid


def test_vision_tower_output_and_gradients_match_the_convolution(tiny_model_dir) -> None:
    from egm_ros.models.patch_embedding import use_linear_patch_embedding

    conv_model, linear_model = _vision(tiny_model_dir), _vision(tiny_model_dir)
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

    from egm_ros.models.patch_embedding import use_linear_patch_embedding

    model = _vision(tiny_model_dir)
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
    from egm_ros.models.patch_embedding import use_linear_patch_embedding

    class Embed(torch.nn.Module):
        patch_size, temporal_patch_size, in_channels = 4, 2, 3

        def __init__(self, **conv) -> None:
            super().__init__()
            self.proj = torch.nn.Conv3d(3, 8, kernel_size=(2, 4, 4), **conv)

    overlapping = torch.nn.Sequential(Embed(stride=(2, 2, 2)), Embed(stride=2, padding=1))
    assert use_linear_patch_embedding(overlapping) == 0
    assert "forward" not in vars(overlapping[0])
    assert use_linear_patch_embedding(torch.nn.Sequential(Embed(stride=(2, 4, 4)))) == 1
