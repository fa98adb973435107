"""Weight-only quantisation of a Llama/Qwen2 model's linear layers, at load time.

- ``int8``: symmetric, one scale per output channel: w ≈ s[o] · q[o, i], q ∈ [-127, 127].
- ``int4``: symmetric, one scale per group of ``group_size`` inputs: w ≈ s[o, g] · q[o, i], q ∈ [-8, 7],
  two values packed per byte.

The attention and MLP projections of every decoder layer are replaced by `QuantLinear`; embeddings,
norms and the LM head stay in the model's dtype (the usual choice: they are small here and the most
sensitive). Activations are not quantised: each forward dequantises the weight and runs the ordinary
matmul, so memory shrinks but, on a CPU without int8/int4 kernels, time does not (measured in
`benchmarks/serve/quantization.py`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

QuantMode = Literal["int8", "int4"]


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q int8 [out, in], scale float32 [out])."""
    w = w.float()
    scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def quantize_int4(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed uint8 [out, in / 2], scale float32 [out, in / group_size])."""
    out_f, in_f = w.shape
    if in_f % group_size or group_size % 2:
        raise ValueError(f"quantization: {in_f} input features do not split into groups of {group_size}")
    g = w.float().view(out_f, in_f // group_size, group_size)
    scale = (g.abs().amax(dim=2) / 7).clamp(min=1e-12)
    q = torch.round(g / scale[..., None]).clamp(-8, 7).to(torch.int8).view(out_f, in_f)
    nibbles = (q + 8).to(torch.uint8)  # 0..15
    return nibbles[:, 0::2] | (nibbles[:, 1::2] << 4), scale


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """int8 [out, in] in [-8, 7] from two nibbles per byte."""
    low = (packed & 0x0F).to(torch.int8) - 8
    high = (packed >> 4).to(torch.int8) - 8
    return torch.stack((low, high), dim=2).flatten(1)


class QuantLinear(nn.Module):
    """A linear layer with an int8 or packed-int4 weight, dequantised on each forward."""

    def __init__(self, linear: nn.Linear, mode: QuantMode, group_size: int = 32) -> None:
        super().__init__()
        self.mode, self.group_size = mode, group_size
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach()
        q, scale = quantize_int8(w) if mode == "int8" else quantize_int4(w, group_size)
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(),
                                                                  requires_grad=False)
        self.dtype = w.dtype

    def dequantized(self) -> torch.Tensor:
        if self.mode == "int8":
            return self.qweight.to(self.dtype) * self.scale[:, None].to(self.dtype)
        q = unpack_int4(self.qweight).view(self.out_features, -1, self.group_size)
        return (q.to(self.dtype) * self.scale[..., None].to(self.dtype)).view(self.out_features, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized(), self.bias)

    @property
    def weight_bytes(self) -> int:
        return self.qweight.numel() * self.qweight.element_size() + self.scale.numel() * 4


def quantize_model(model: nn.Module, mode: QuantMode, group_size: int = 32) -> nn.Module:
    """Replace the decoder layers' linear projections in place; returns `model`."""
    targets = [(parent, name, child) for parent in model.model.layers.modules()
               for name, child in parent.named_children() if isinstance(child, nn.Linear)]
    for parent, name, child in targets:
        setattr(parent, name, QuantLinear(child, mode, group_size))
    return model


def quantization_of(model: nn.Module) -> QuantMode | None:
    """The mode `quantize_model` applied to `model` (None: not quantised)."""
    modes = {m.mode for m in model.modules() if isinstance(m, QuantLinear)}
    return next(iter(modes)) if len(modes) == 1 else None


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes of the decoder layers' projection weights (quantised or not)."""
    total = 0
    for m in model.model.layers.modules():
        if isinstance(m, QuantLinear):
            total += m.weight_bytes
        elif isinstance(m, nn.Linear):
            total += m.weight.numel() * m.weight.element_size()
    return total
