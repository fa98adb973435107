"""FNO-2D over (t, x) from the `neuraloperator` package, as PDEformer-1's FNO baseline.

The reference (``configs/baseline/*``) maps the initial condition to the whole solution at once, not
autoregressively: u(0, x) is tiled along t and, with the t and x coordinates, forms three input
channels of a 2D Fourier neural operator (4 layers, width 20, 12 modes per axis).
"""

from __future__ import annotations

import torch
from torch import nn


def grid_inputs(u0: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B, X] initial conditions, [T] and [X] coordinates -> [B, 3, T, X] (u0 tiled, t, x)."""
    bsz, nx = u0.shape
    nt = t.shape[0]
    tt = t.view(1, 1, nt, 1).expand(bsz, 1, nt, nx)
    xx = x.view(1, 1, 1, nx).expand(bsz, 1, nt, nx)
    return torch.cat([u0.view(bsz, 1, 1, nx).expand(bsz, 1, nt, nx), tt, xx], dim=1)


class FNOBaseline(nn.Module):
    """u(0, x) -> u(t, x) on any (t, x) grid with neuraloperator's ``FNO``.

    Parameters
    ----------
    modes : Fourier modes kept per axis (t and x)
    width : hidden channels
    num_layers : Fourier layers

    The spectral layers are resolution independent, so a model trained on one grid can be
    evaluated on a finer or coarser one (the grid only has to hold ``modes`` modes per axis).
    """

    def __init__(self, modes: int = 12, width: int = 20, num_layers: int = 4) -> None:
        super().__init__()
        from neuralop.models import FNO

        self.fno = FNO(
            n_modes=(modes, modes),
            in_channels=3,
            out_channels=1,
            hidden_channels=width,
            n_layers=num_layers,
            positional_embedding=None,  # the coordinates are explicit input channels
        )

    def forward(self, u0: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """[B, X], [T], [X] -> u [B, T, X]."""
        return self.fno(grid_inputs(u0, t, x))[:, 0]
