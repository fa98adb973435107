"""The batched Fourier IMEX-SBDF2 solver of `spectral_solver.solve_periodic`, in torch (GPU data).

Same scheme step for step (implicit c01 u, c11 u_x and kappa_max u_xx; everything else explicit on
a 2x zero-padded grid; SBDF1 start; samples that blow up are frozen and flagged), so on a GPU the
whole chunk advances with a handful of batched FFT kernels per step. float64 by default: the labels
must not carry single-precision drift over 5,000 steps. Tests compare it with the numpy solver.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from foundry.pde.data.spectral_solver import U_MAX


def solve_periodic_torch(
    u0: np.ndarray,
    c0: np.ndarray,
    c1: np.ndarray,
    source: np.ndarray,
    kappa: np.ndarray,
    num_t: int = 101,
    dt: float = 4e-4,
    t_end: float = 1.0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """`solve_periodic` (same arguments and returns, numpy in and out) computed with torch on ``device``."""
    dev = torch.device(device)

    def T(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64), device=dev).to(dtype)

    u0_t = T(np.atleast_2d(u0))
    bsz, n = u0_t.shape
    steps_per_save = (t_end / (num_t - 1)) / dt
    if abs(steps_per_save - round(steps_per_save)) > 1e-6 or round(steps_per_save) < 1:
        raise ValueError(f"dt={dt} must divide the save interval {t_end / (num_t - 1)}")
    steps_per_save = round(steps_per_save)
    m = 2 * n
    k = (math.pi * torch.arange(n // 2 + 1, device=dev, dtype=dtype))[None, :]
    c0_t, c1_t, kappa_t = T(c0), T(c1), T(kappa)
    kmax = kappa_t.max(dim=1, keepdim=True).values
    lin = -c0_t[:, :1] - 1j * k * c1_t[:, :1] - kmax * k**2  # implicit operator [B, n//2+1]

    def to_fine(vh: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft(vh, m, dim=-1) * (m / n)

    def from_fine(v: torch.Tensor) -> torch.Tensor:
        vh = torch.fft.rfft(v, dim=-1)[..., : n // 2 + 1] * (n / m)
        vh[..., -1] = 0.0  # drop the Nyquist mode
        return vh

    dkappa_fine = to_fine(torch.fft.rfft(kappa_t - kmax, dim=-1))
    source_h = torch.fft.rfft(T(source), dim=-1)
    ik = 1j * k

    def explicit(uh: torch.Tensor) -> torch.Tensor:
        u, ux = to_fine(uh), to_fine(ik * uh)
        u2 = u * u
        react = c0_t[:, 1:2] * u2 + c0_t[:, 2:3] * u2 * u
        flux = c1_t[:, 1:2] * u2 + c1_t[:, 2:3] * u2 * u - dkappa_fine * ux
        return -from_fine(react) - source_h - ik * from_fine(flux)

    out = torch.empty(bsz, num_t, n, device=dev, dtype=dtype)
    out[:, 0] = u0_t
    ok = torch.ones(bsz, dtype=torch.bool, device=dev)
    uh = torch.fft.rfft(u0_t, dim=-1)
    uh[:, -1] = 0.0
    n_prev = explicit(uh)
    uh_prev, uh = uh, (uh + dt * n_prev) / (1 - dt * lin)  # SBDF1 start
    step = 1
    denom = 3 - 2 * dt * lin
    for frame in range(1, num_t):
        while step < frame * steps_per_save:
            n_cur = explicit(uh)
            uh_next = (4 * uh - uh_prev + 2 * dt * (2 * n_cur - n_prev)) / denom
            uh_prev, uh, n_prev = uh, uh_next, n_cur
            step += 1
        u = torch.fft.irfft(uh, n, dim=-1)
        bad = ~torch.all(torch.isfinite(u) & (u.abs() <= U_MAX), dim=1)
        ok &= ~bad
        # freeze failed samples at zero so they cannot overflow later steps (no host sync: a mask)
        keep = (~bad)[:, None]
        uh, uh_prev, n_prev = uh * keep, uh_prev * keep, n_prev * keep
        out[:, frame] = torch.where(ok[:, None], u, out[:, frame - 1])
    return out.cpu().numpy().astype(np.float64), ok.cpu().numpy()
