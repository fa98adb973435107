"""Random periodic fields on [0, 1]^2 for 2D initial conditions, sources and coefficients (PDEformer-2).

Two kinds, as in the reference data: Gaussian random fields with the spectrum
sigma^2 (|k|^2 + tau^2)^(-alpha) (smoother for larger alpha, correlation length ~ 1/tau), and sums of
a few sines with integer wavenumbers. Both are seeded through a ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch

from foundry.pde.data.spectral2d import grid, wavenumbers

Tensor = torch.Tensor


def grf(
    gen: torch.Generator,
    batch: int,
    n: int,
    alpha: float = 2.5,
    tau: float = 7.0,
    sigma: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Draw ``batch`` periodic Gaussian random fields [batch, n, n] with pointwise standard deviation sigma.

    The Fourier coefficients are independent complex normals with variance proportional to
    (|k|^2 + tau^2)^(-alpha), k the angular wavenumber; the Nyquist modes are left out so the field
    is exactly representable by the solvers. The noise is drawn on ``gen``'s device (CPU by default).
    """
    dev = gen.device
    kx, ky = wavenumbers(n, dev, dtype)
    spec = (kx**2 + ky**2 + tau**2) ** (-alpha / 2)
    spec[n // 2, :] = 0.0
    spec[:, n // 2] = 0.0
    shape = (batch, n, n // 2 + 1)
    noise = torch.complex(
        torch.randn(shape, generator=gen, device=dev, dtype=dtype),
        torch.randn(shape, generator=gen, device=dev, dtype=dtype),
    )
    field = torch.fft.irfft2(noise * spec, s=(n, n))
    # normalise by the exact pointwise std of this spectrum (irfft2 of Hermitian noise), not the sample's
    # (ky > 0 modes appear twice, as 2 Re(.); irfft2 keeps only the real part of the ky = 0 column)
    weight = torch.full_like(spec, 4.0)
    weight[:, 0] = 1.0
    var = (weight * spec**2).sum() / n**4
    return field * (sigma / var.sqrt())


def sine_sum(
    gen: torch.Generator,
    batch: int,
    n: int,
    num_terms: int = 4,
    max_freq: int = 4,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Draw ``batch`` fields [batch, n, n] = sum_j a_j sin(2 pi (p_j x + q_j y) + phi_j) / sum_j |a_j|.

    p_j, q_j are integers in [-max_freq, max_freq] (not both zero), a_j ~ U[-1, 1], phi_j ~ U[0, 2 pi).
    So |u| <= 1. The random draws do not depend on n, so one seed gives the same function on every grid
    (n > 2 max_freq keeps it exactly resolved), which is what refinement studies need.
    """
    dev = gen.device
    freqs = torch.randint(-max_freq, max_freq + 1, (batch, num_terms, 2), generator=gen, device=dev)
    zero = (freqs == 0).all(dim=-1)
    freqs[..., 0] = torch.where(zero, torch.ones_like(freqs[..., 0]), freqs[..., 0])  # no constant terms
    amp = torch.rand(batch, num_terms, generator=gen, device=dev, dtype=dtype) * 2 - 1
    phase = torch.rand(batch, num_terms, generator=gen, device=dev, dtype=dtype) * (2 * math.pi)
    x, y = grid(n, dev, dtype)
    arg = (
        2 * math.pi * (freqs[..., 0, None, None] * x + freqs[..., 1, None, None] * y) + phase[..., None, None]
    )
    field = (amp[..., None, None] * torch.sin(arg)).sum(dim=1)
    # divide by sum |a_j| rather than the grid maximum, which would depend on n
    return field / amp.abs().sum(dim=1)[:, None, None].clamp_min(1e-12)
