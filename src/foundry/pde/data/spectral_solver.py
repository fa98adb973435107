"""Batched Fourier pseudo-spectral IMEX-SBDF2 solver for the periodic 1D family.

u_t = -(c01 u + c02 u^2 + c03 u^3) - s(x) - d_x(c11 u + c12 u^2 + c13 u^3 - kappa(x) u_x)

Stiff linear terms (c01 u, c11 u_x and kappa_max u_xx, kappa_max = max_x kappa) are implicit; the
rest, including (kappa(x) - kappa_max) u_x inside the flux, is explicit. Products are formed on a
2x zero-padded grid (exact for the cubic terms, the Dedalus "dealias 2" of the reference). The
second-order backward differentiation (SBDF2) step is started with one SBDF1 step. The batch is
solved together, one FFT per array per step; samples that blow up are frozen and flagged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

U_MAX = 10.0  # rejection threshold of the reference recipe


def wavenumbers(n: int) -> np.ndarray:
    """rfft wavenumbers on the periodic interval [-1, 1): k = pi * m."""
    return np.pi * np.arange(n // 2 + 1)


def _to_fine(uh: np.ndarray, n: int, m: int) -> np.ndarray:
    """Values on the m-point grid of the band-limited function with n-point spectrum uh."""
    return np.fft.irfft(uh, m, axis=-1) * (m / n)


def _from_fine(v: np.ndarray, n: int) -> np.ndarray:
    m = v.shape[-1]
    vh = np.fft.rfft(v, axis=-1)[..., : n // 2 + 1] * (n / m)
    vh[..., -1] = 0.0  # drop the Nyquist mode
    return vh


def solve_periodic(
    u0: np.ndarray,
    c0: np.ndarray,
    c1: np.ndarray,
    source: np.ndarray,
    kappa: np.ndarray,
    num_t: int = 101,
    dt: float = 4e-4,
    t_end: float = 1.0,
    extra: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve a batch of family members on the uniform periodic grid x_j = -1 + 2j/n.

    Parameters
    ----------
    u0, source, kappa : (B, n) arrays
        Initial condition, source s(x) and diffusivity kappa(x) > 0 on the grid.
    c0, c1 : (B, 3) arrays
        Coefficients of u, u^2, u^3 in f0 and f1.
    num_t : int
        Number of saved frames, uniform on [0, t_end] (first is u0).
    dt : float
        Time step; ``t_end / (num_t - 1)`` must be a multiple of it.
    extra : callable, optional
        Further explicit terms: maps u on the 2n-point padded grid, (B, 2n), to ``(r, g)`` on that
        grid, added to f0 and f1 (e.g. the sin/cos terms of `foundry.pde.data.sinus_trig`). Not
        polynomial, so the 2x padding no longer removes all aliasing.

    Returns
    -------
    u : (B, num_t, n) float64 solution (frozen at the last finite state for failed samples)
    ok : (B,) bool, False where the solution became non-finite or exceeded |u| > 10
    """
    u0 = np.atleast_2d(np.asarray(u0, dtype=np.float64))
    bsz, n = u0.shape
    steps_per_save = (t_end / (num_t - 1)) / dt
    if abs(steps_per_save - round(steps_per_save)) > 1e-6 or round(steps_per_save) < 1:
        raise ValueError(f"dt={dt} must divide the save interval {t_end / (num_t - 1)}")
    steps_per_save = round(steps_per_save)
    m = 2 * n
    k = wavenumbers(n)[None, :]
    c0, c1 = np.asarray(c0, dtype=np.float64), np.asarray(c1, dtype=np.float64)
    kappa = np.asarray(kappa, dtype=np.float64)
    kmax = kappa.max(axis=1, keepdims=True)
    lin = -c0[:, :1] - 1j * k * c1[:, :1] - kmax * k**2  # implicit operator, (B, n//2+1)
    dkappa_fine = _to_fine(np.fft.rfft(kappa - kmax, axis=-1), n, m)  # kappa(x) - kappa_max on fine grid
    source_h = np.fft.rfft(np.asarray(source, dtype=np.float64), axis=-1)

    def explicit(uh: np.ndarray) -> np.ndarray:
        u, ux = _to_fine(uh, n, m), _to_fine(1j * k * uh, n, m)
        u2 = u * u
        react = c0[:, 1:2] * u2 + c0[:, 2:3] * u2 * u
        flux = c1[:, 1:2] * u2 + c1[:, 2:3] * u2 * u - dkappa_fine * ux
        if extra is not None:
            more_react, more_flux = extra(u)
            react, flux = react + more_react, flux + more_flux
        return -_from_fine(react, n) - source_h - 1j * k * _from_fine(flux, n)

    out = np.empty((bsz, num_t, n))
    out[:, 0] = u0
    ok = np.ones(bsz, dtype=bool)
    uh = np.fft.rfft(u0, axis=-1)
    uh[:, -1] = 0.0
    with np.errstate(all="ignore"):
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
            u = np.fft.irfft(uh, n, axis=-1)
            bad = ~np.all(np.isfinite(u) & (np.abs(u) <= U_MAX), axis=1)
            if bad.any():
                ok &= ~bad
                # freeze failed samples at zero so they cannot overflow later steps
                uh[bad] = uh_prev[bad] = n_prev[bad] = 0.0
            out[:, frame] = np.where(ok[:, None], u, out[:, frame - 1])
    return out, ok


def checkerboard(u: np.ndarray, frac: float = 0.01, rel: float = 0.05, periodic: bool = True) -> np.ndarray:
    """Flag spurious grid-scale oscillation (the reference's rejection rule).

    A point is a suspicious x-local extremum when it exceeds both neighbours (or lies below both)
    by more than ``rel`` times the solution's range; a sample is rejected when more than ``frac``
    of its points are. Without periodicity only interior points are tested.

    Parameters
    ----------
    u : (B, T, n) solutions.

    Returns
    -------
    (B,) bool, True where the sample should be rejected.
    """
    left, right = np.roll(u, 1, axis=-1), np.roll(u, -1, axis=-1)
    span = (u.max(axis=(1, 2)) - u.min(axis=(1, 2)))[:, None, None] + 1e-12
    thresh = rel * span
    peak = ((u - left) > thresh) & ((u - right) > thresh)
    valley = ((left - u) > thresh) & ((right - u) > thresh)
    flags = peak | valley
    if not periodic:
        flags = flags[..., 1:-1]
    return flags.mean(axis=(1, 2)) > frac
