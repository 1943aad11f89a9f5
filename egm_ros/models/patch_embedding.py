"""Qwen-VL patch embeddings as one matrix product instead of a 3-D convolution.

Why: the Qwen2-VL, Qwen2.5-VL and Qwen3-VL vision towers take their pixels already cut into
flattened patches, and embed each with a ``Conv3d`` whose stride equals its kernel: every output
is the dot product of one patch with one filter, i.e. ``F.linear`` with the filters flattened.
On the CPU the convolution is the slow way to compute that. For EGM-Tiny (196 patches of
2 x 16 x 16 x 3 values, 128 filters, one thread): 3.5 ms per image forward as a convolution,
0.7 ms as a matrix product; in training under bf16 autocast, the convolution's backward alone
took 0.62 of the 1.54 s of a 16-sample step. The weights stay the ``Conv3d``'s own parameters
(viewed, not copied), so gradients, ``state_dict`` and ``save_pretrained`` are unchanged and
the model folder stays a standard one.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F


def _as_linear(self: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    """The patch embedding's forward: each row of ``hidden_states`` is one flattened patch in
    the ``(channels, temporal, height, width)`` order the convolution's filters use."""
    weight = self.proj.weight
    flat = hidden_states.reshape(-1, weight[0].numel()).to(weight.dtype)
    return F.linear(flat, weight.reshape(weight.shape[0], -1), self.proj.bias)


def _is_patch_conv(module: torch.nn.Module) -> bool:
    """A Qwen-VL patch embedding: a ``proj`` Conv3d whose stride is its kernel, no padding,
    no dilation and no groups (so each output sees exactly one patch)."""
    conv = getattr(module, "proj", None)
    return (
        isinstance(conv, torch.nn.Conv3d)
        and all(hasattr(module, a) for a in ("patch_size", "temporal_patch_size", "in_channels"))
        and tuple(conv.stride) == tuple(conv.kernel_size)
        and tuple(conv.padding) == (0, 0, 0)
        and tuple(conv.dilation) == (1, 1, 1)
        and conv.groups == 1
    )


def use_linear_patch_embedding(model: torch.nn.Module) -> int:
    """Make every Qwen-VL patch embedding in ``model`` compute as a matrix product; returns how
    many it changed (0 for models without one, e.g. InternVL's Conv2d over whole images)."""
    changed = 0
    for module in model.modules():
        if _is_patch_conv(module):
            module.forward = types.MethodType(_as_linear, module)
            changed += 1
    return changed
