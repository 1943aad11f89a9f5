"""Equivalent, faster forwards for two Qwen-VL building blocks on the CPU, set on a loaded model's
modules; the weights, ``state_dict`` and ``save_pretrained`` stay exactly as they were, so the
model folder stays a standard one.

**Patch embedding as one matrix product.** The Qwen2-VL, Qwen2.5-VL and Qwen3-VL vision towers
take their pixels already cut into flattened patches and embed each with a ``Conv3d`` whose
stride equals its kernel: every output is the dot product of one patch with one filter, i.e.
``F.linear`` with the filters flattened (a view of the convolution's own parameter, so training
updates it). For EGM-Tiny (196 patches of 2 x 16 x 16 x 3 values, 128 filters, one thread):
3.5 ms per image forward as a convolution, 0.7 ms as a matrix product; in training under bf16
autocast the convolution's backward alone took 0.62 of the 1.54 s of a 16-sample step.

**RMSNorm as torch's fused ``rms_norm``.** transformers' Qwen3 RMSNorm is five tensor operations
(cast, square, mean, reciprocal square root, scale); EGM-Tiny runs it 17 times per decoding step,
where at a batch of two the per-operation overhead is most of the cost. For float32 input (the
CPU engine's dtype) the fused op computes the same normalisation. Both forms together, an
amodal request (two queries) in-process: 416 -> 393 ms p50 (399 -> 356 in an earlier pair of
runs); end to end through ``egm-eval`` only 381.9 -> 378.7 ms, identical answers on 200
held-out requests. Other input dtypes keep transformers' own forward, which casts to float32
first.
"""

from __future__ import annotations

import types
from collections.abc import Callable
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
    return _set_forward(model, _is_patch_conv, _as_linear)


def _fused_rms_norm(self: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    """``weight * x / sqrt(mean(x^2) + eps)`` in one op for float32 input; transformers' own
    forward (through the class, not this instance) for any other dtype."""
    if hidden_states.dtype != torch.float32:
        return type(self).forward(self, hidden_states)
    return F.rms_norm(hidden_states, self.weight.shape, self.weight, self.variance_epsilon)


def _is_qwen_rms_norm(module: torch.nn.Module) -> bool:
    """transformers' Qwen2/2.5/3(-VL) RMSNorm: a class named ``...RMSNorm`` with a 1-D
    ``weight`` and ``variance_epsilon`` (the layout the fused op takes as it is)."""
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__.endswith("RMSNorm")
        and isinstance(getattr(module, "variance_epsilon", None), float)
        and isinstance(weight, torch.Tensor)
        and weight.dim() == 1
    )


def use_fused_rms_norm(model: torch.nn.Module) -> int:
    """Make every Qwen RMSNorm in ``model`` use torch's fused ``rms_norm`` for float32 input;
    returns how many it changed."""
    return _set_forward(model, _is_qwen_rms_norm, _fused_rms_norm)


def _set_forward(
    model: torch.nn.Module,
    matches: Callable[[torch.nn.Module], bool],
    forward: Callable[..., torch.Tensor],
) -> int:
    """Bind ``forward`` as the forward of each module of ``model`` that ``matches`` (on the
    instance: the class and other models keep theirs); how many."""
    changed = 0
    for module in model.modules():
        if matches(module):
            module.forward = types.MethodType(forward, module)
            changed += 1
    return changed
