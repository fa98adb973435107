"""Boundary conditions and node grids drawn for the non-periodic 2-D families (square and disk).

Shared by the time-dependent files (`generate2d`) and the steady ones (`steady2d`).
"""

from __future__ import annotations

import torch

from foundry.pde.data.families2d import uniform
from foundry.pde.data.pde2d_builders import D_TYPE, N_TYPE, BoundaryForms

DISK_RADIUS = (0.3, 0.5)  # disks of radius U[0.3, 0.5] about (0.5, 0.5)


def close_nodes(f: torch.Tensor) -> torch.Tensor:
    """[B, m, m] periodic values -> [B, m + 1, m + 1] node values (x = 1 repeats x = 0)."""
    f = torch.cat([f, f[:, :1]], dim=1)
    return torch.cat([f, f[:, :, :1]], dim=2)


def _zero_one_or(gen: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    """Each entry 0, 1 or U[lo, hi] with equal odds (the reference's {0, 1, scalar} choices)."""
    pick = torch.randint(0, 3, shape, generator=gen)
    return torch.where(pick == 0, 0.0, torch.where(pick == 1, 1.0, uniform(gen, shape, lo, hi)))


def sample_conditions(gen: torch.Generator, batch: int, pieces: int) -> BoundaryForms:
    """Random conditions per boundary piece: D-type u + b u_n + c or N-type a u + u_n + c (equal odds).

    b, a in {0, 1, U[0, 1]} (non-negative, so every Robin condition is dissipative; b = 0 is
    Dirichlet, a = 0 Neumann), c in {0, 1, U[-1, 1]}. Our choices. Field-valued c is not drawn yet
    (the solvers and graphs take it); field-valued a, b are not (the square's solver needs scalars).
    """
    kind = torch.where(torch.rand(batch, pieces, generator=gen) < 0.5, D_TYPE, N_TYPE)
    return BoundaryForms(
        kind, _zero_one_or(gen, (batch, pieces), 0.0, 1.0), _zero_one_or(gen, (batch, pieces), -1.0, 1.0)
    )
