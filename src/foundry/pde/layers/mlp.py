"""Plain ReLU multilayer perceptron, used for the scalar encoder, hypernets and function pooling."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Sequential):
    """``num_layers`` Linear layers ``dim_in -> dim_hidden -> ... -> dim_out`` with ReLU between.

    Parameters
    ----------
    dim_in, dim_hidden, dim_out : int
        Feature sizes.
    num_layers : int
        Number of Linear layers (>= 1).
    """

    def __init__(self, dim_in: int, dim_hidden: int, dim_out: int, num_layers: int) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        dims = [dim_in] + [dim_hidden] * (num_layers - 1) + [dim_out]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                layers.append(nn.ReLU())
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)
