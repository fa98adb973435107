"""Random members of the periodic 2D DCR and Wave families (PDEformer-2, reference section 8).

Ranges follow the reference: a in [1e-3, 1e-2], polynomial coefficients U[-1, 1], c2 in [1e-2, 4],
initial fields a GRF or a sine sum. Choices the reference does not state are ours and named here:
a is log-uniform; each polynomial coefficient is zero with probability 1/2 (as in PDEformer-1's
family, so that simple members occur); sources, damping and initial velocities are absent with
probability 1/2; GRFs use alpha = 2.5, tau = 7, sigma = 1 (sources sigma = 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from foundry.pde.data.fields2d import grf, sine_sum

Tensor = torch.Tensor
A_RANGE = (1e-3, 1e-2)
C2_RANGE = (1e-2, 4.0)


@dataclass
class DCRBatch:
    """Arguments of `spectral2d.solve_dcr` for B members: u0, source [B, n, n]; a [B]; c0, c1, c2 [B, 3]."""

    u0: Tensor
    a: Tensor
    c0: Tensor
    c1: Tensor
    c2: Tensor
    source: Tensor


@dataclass
class WaveBatch:
    """Arguments of `spectral2d.solve_wave` for B members: u0, v0, source [B, n, n]; c2, damping [B]."""

    u0: Tensor
    v0: Tensor
    c2: Tensor
    damping: Tensor
    source: Tensor


def uniform(gen: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> Tensor:
    """U[lo, hi] float64 draws of ``shape``."""
    return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)


def _present(gen: torch.Generator, batch: int) -> Tensor:
    """[B, 1, 1] mask: 1 with probability 1/2."""
    return (torch.rand(batch, generator=gen, dtype=torch.float64) < 0.5).double()[:, None, None]


def random_field(gen: torch.Generator, batch: int, n: int, sigma: float = 1.0) -> Tensor:
    """[B, n, n]: per sample a GRF (std sigma) or a sine sum (max |u| <= sigma), equal odds."""
    use_grf = _present(gen, batch)
    return use_grf * grf(gen, batch, n, sigma=sigma) + (1 - use_grf) * sigma * sine_sum(gen, batch, n)


def sample_dcr(gen: torch.Generator, batch: int, n: int) -> DCRBatch:
    """Draw ``batch`` DCR members on the n x n grid (CPU, float64)."""
    log_a = uniform(gen, (batch,), math.log(A_RANGE[0]), math.log(A_RANGE[1]))
    coefs = uniform(gen, (3, batch, 3), -1.0, 1.0)
    coefs = coefs * (torch.rand(coefs.shape, generator=gen, dtype=torch.float64) < 0.5)
    source = _present(gen, batch) * random_field(gen, batch, n, sigma=0.5)
    return DCRBatch(random_field(gen, batch, n), log_a.exp(), coefs[0], coefs[1], coefs[2], source)


def sample_wave(gen: torch.Generator, batch: int, n: int) -> WaveBatch:
    """Draw ``batch`` Wave members on the n x n grid (CPU, float64)."""
    c2 = uniform(gen, (batch,), *C2_RANGE)
    damping = _present(gen, batch)[:, 0, 0] * uniform(gen, (batch,), 0.0, 1.0)
    v0 = _present(gen, batch) * random_field(gen, batch, n)
    source = _present(gen, batch) * random_field(gen, batch, n, sigma=0.5)
    return WaveBatch(random_field(gen, batch, n), v0, c2, damping, source)
