"""Batched finite-difference IMEX-SBDF2 solver for the family with Dirichlet/Neumann/Robin ends.

u_t + f0(u) + s(x) + (f1(u) - kappa(x) u_x)_x = 0 on x in [-1, 1], with at each end
``a * u + b * u_x = g`` (Dirichlet: a=1, b=0; Neumann: a=0, b=1; Robin: a=cos(alpha),
b=sin(alpha)). Second-order finite differences on the vertex grid x_j = -1 + 2j/(n-1): the
diffusion in conservative form with kappa averaged to the half points, first derivatives central,
boundary derivatives one-sided second order. The linear part (c01 u, c11 u_x and the diffusion) is
implicit, the nonlinear reaction, flux and the source explicit. The boundary rows are the algebraic
boundary conditions themselves, imposed at every step. The implicit matrices are inverted once per
sample (n is small), so a step is one batched matrix-vector product.

The reference generates this family with Dedalus' Chebyshev-tau method; this is the "second-order
FD on 256 cells" alternative its notes name.
"""

from __future__ import annotations

import numpy as np

from foundry.pde.data.spectral_solver import U_MAX


def nonperiodic_grid(n: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, n)


def _operators(c0, c1, kappa, n):
    """Implicit linear operator A [B, n, n] on interior rows, and the central difference D [n, n]."""
    h = 2.0 / (n - 1)
    bsz = kappa.shape[0]
    k_half = 0.5 * (kappa[:, 1:] + kappa[:, :-1])  # kappa at j + 1/2, [B, n-1]
    a = np.zeros((bsz, n, n))
    j = np.arange(1, n - 1)
    a[:, j, j - 1] = k_half[:, j - 1] / h**2 + c1[:, :1] / (2 * h)
    a[:, j, j + 1] = k_half[:, j] / h**2 - c1[:, :1] / (2 * h)
    a[:, j, j] = -(k_half[:, j - 1] + k_half[:, j]) / h**2 - c0[:, :1]
    d = np.zeros((n, n))
    d[j, j + 1], d[j, j - 1] = 1 / (2 * h), -1 / (2 * h)
    return a, d


def _system(a, factor, dt, bc_left, bc_right, n):
    """Matrix of ``factor*I - c*dt*A`` on interior rows (c = 2 for SBDF2, 1 for SBDF1) with BC rows."""
    h = 2.0 / (n - 1)
    bsz = a.shape[0]
    m = factor[0] * np.eye(n)[None] - factor[1] * dt * a
    m[:, 0, :] = 0.0
    m[:, -1, :] = 0.0
    al, bl = bc_left[:, 0], bc_left[:, 1]
    ar, br = bc_right[:, 0], bc_right[:, 1]
    m[:, 0, 0] = al - 3 * bl / (2 * h)
    m[:, 0, 1] = 4 * bl / (2 * h)
    m[:, 0, 2] = -bl / (2 * h)
    m[:, -1, -1] = ar + 3 * br / (2 * h)
    m[:, -1, -2] = -4 * br / (2 * h)
    m[:, -1, -3] = br / (2 * h)
    assert m.shape == (bsz, n, n)
    return np.linalg.inv(m)


def solve_nonperiodic(
    u0: np.ndarray,
    c0: np.ndarray,
    c1: np.ndarray,
    source: np.ndarray,
    kappa: np.ndarray,
    bc_left: np.ndarray,
    bc_right: np.ndarray,
    num_t: int = 101,
    dt: float = 2e-4,
    t_end: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve a batch on the vertex grid `nonperiodic_grid(n)`.

    Parameters
    ----------
    u0, source, kappa : (B, n)
    c0, c1 : (B, 3) coefficients of u, u^2, u^3 in f0 and f1
    bc_left, bc_right : (B, 3) rows (a, b, g) of ``a*u + b*u_x = g`` at x = -1 and x = 1

    Returns
    -------
    u : (B, num_t, n), ok : (B,) False where |u| > 10 or non-finite
    """
    u0 = np.atleast_2d(np.asarray(u0, dtype=np.float64))
    bsz, n = u0.shape
    per_save = t_end / (num_t - 1) / dt
    if abs(per_save - round(per_save)) > 1e-6 or round(per_save) < 1:
        raise ValueError(f"dt={dt} must divide the save interval {t_end / (num_t - 1)}")
    per_save = round(per_save)
    bc_left, bc_right = np.asarray(bc_left, dtype=np.float64), np.asarray(bc_right, dtype=np.float64)
    if np.any(np.abs(bc_left[:, :2]).sum(1) == 0) or np.any(np.abs(bc_right[:, :2]).sum(1) == 0):
        raise ValueError("each boundary condition needs a != 0 or b != 0")
    c0, c1 = np.asarray(c0, dtype=np.float64), np.asarray(c1, dtype=np.float64)
    a, d = _operators(c0, c1, np.asarray(kappa, dtype=np.float64), n)
    inv1 = _system(a, (1.0, 1.0), dt, bc_left, bc_right, n)
    inv2 = _system(a, (3.0, 2.0), dt, bc_left, bc_right, n)
    source = np.asarray(source, dtype=np.float64)

    def explicit(u):
        u2 = u * u
        flux = c1[:, 1:2] * u2 + c1[:, 2:3] * u2 * u
        out = -(c0[:, 1:2] * u2 + c0[:, 2:3] * u2 * u) - source - flux @ d.T
        out[:, 0] = out[:, -1] = 0.0
        return out

    def with_bc(rhs):
        rhs[:, 0], rhs[:, -1] = bc_left[:, 2], bc_right[:, 2]
        return rhs

    def apply(inv, rhs):
        return np.einsum("bij,bj->bi", inv, rhs)

    out = np.empty((bsz, num_t, n))
    out[:, 0] = u0
    ok = np.ones(bsz, dtype=bool)
    with np.errstate(all="ignore"):
        n_prev = explicit(u0)
        u_prev, u = u0, apply(inv1, with_bc(u0 + dt * n_prev))
        step = 1
        for frame in range(1, num_t):
            while step < frame * per_save:
                n_cur = explicit(u)
                u_next = apply(inv2, with_bc(4 * u - u_prev + 2 * dt * (2 * n_cur - n_prev)))
                u_prev, u, n_prev = u, u_next, n_cur
                step += 1
            bad = ~np.all(np.isfinite(u) & (np.abs(u) <= U_MAX), axis=1)
            if bad.any():
                ok &= ~bad
                u[bad] = u_prev[bad] = n_prev[bad] = 0.0
            out[:, frame] = np.where(ok[:, None], u, out[:, frame - 1])
    return out, ok
