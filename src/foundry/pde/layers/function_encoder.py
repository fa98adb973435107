"""Mesh-free encoder of functions given as point sets {(x_i, f(x_i))}."""

from __future__ import annotations

import torch
from torch import nn

from foundry.pde.layers.mlp import MLP
from foundry.pde.layers.poly_inr import PolyINR


class WeightedDeepSet(nn.Module):
    """Weighted DeepSet function encoder (PDEformer-1 §2.2, ``weighted_deepset``).

    A point-wise Poly-INR gives features, another gives weights that are soft-maxed over the
    points, and an MLP maps the weighted sum to ``num_branches`` tokens of width ``d_model``. The
    result does not depend on the number, order or location of the points, which is what makes the
    model's input mesh-free.

    Parameters
    ----------
    d_model : int
        Width of each output token.
    dim_hidden : int
        Width of the point networks and the pooling MLP (512 in the reference).
    num_layers : int
        Layers of each point Poly-INR and of the pooling MLP (3 in the reference).
    num_branches : int
        Tokens per function (4 in the reference).
    dim_in : int
        Columns of a point: its d spatial coordinates and the value (2 for 1-D functions (x, f)).
    """

    def __init__(
        self, d_model: int, dim_hidden: int, num_layers: int, num_branches: int, dim_in: int = 2
    ) -> None:
        super().__init__()
        self.num_branches, self.d_model = num_branches, d_model
        self.feature = PolyINR(dim_in, dim_hidden, dim_hidden, num_layers)
        self.weight = PolyINR(dim_in, dim_hidden, dim_hidden, num_layers)
        self.post = MLP(dim_hidden, dim_hidden, num_branches * d_model, num_layers)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points: [B, F, P, dim_in] -> tokens [B, F * num_branches, d_model]."""
        w = torch.softmax(self.weight(points), dim=-2)  # [B, F, P, H], normalised over points
        pooled = (w * self.feature(points)).sum(dim=-2)  # [B, F, H]
        out = self.post(pooled)
        return out.reshape(points.shape[0], -1, self.d_model)
