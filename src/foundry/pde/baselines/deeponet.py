"""DeepONet: branch net on the initial condition, trunk net on (t, x), as PDEformer-1's baseline.

u(t, x) = sum_k b_k(u0) tau_k(t, x) + b0. The reference configuration (``configs/baseline``) uses
width 256, 6 layers and 2048 basis functions (`REFERENCE`); the default here is smaller so it trains
on a CPU in minutes (`SMALL`).
"""

from __future__ import annotations

import torch
from torch import nn

REFERENCE = {"width": 256, "num_layers": 6, "num_basis": 2048}
SMALL = {"width": 128, "num_layers": 4, "num_basis": 256}


def _mlp(n_in: int, width: int, num_layers: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(num_layers - 1):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.GELU()]
    layers.append(nn.Linear(width if num_layers > 1 else n_in, n_out))
    return nn.Sequential(*layers)


class DeepONet(nn.Module):
    """Unstacked DeepONet mapping the IC sampled at ``num_sensors`` points to u at any (t, x).

    Parameters
    ----------
    num_sensors : points of u(0, x) fed to the branch net (the 128-point grid)
    width, num_layers : hidden width and depth of both nets
    num_basis : number of basis functions (output size of both nets)
    """

    def __init__(self, num_sensors: int = 128, width: int = 128, num_layers: int = 4, num_basis: int = 256):
        super().__init__()
        self.num_sensors = num_sensors
        self.branch = _mlp(num_sensors, width, num_layers, num_basis)
        self.trunk = _mlp(2, width, num_layers, num_basis)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, u0: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """[B, num_sensors], [T], [X] -> u [B, T, X] (the trunk is evaluated once for the grid)."""
        if u0.shape[-1] != self.num_sensors:
            raise ValueError(f"DeepONet expects the IC at {self.num_sensors} sensors, got {u0.shape[-1]}")
        tt, xx = torch.meshgrid(t, x, indexing="ij")
        basis = torch.tanh(self.trunk(torch.stack([tt, xx], -1)))  # [T, X, K]
        coef = self.branch(u0)  # [B, K]
        return torch.einsum("bk,txk->btx", coef, basis) / coef.shape[-1] ** 0.5 + self.bias
