"""Multi-variable DCR (MV-DCR) systems on the periodic unit square (PDEformer-2, reference section 8).

K = 1..4 components u_k(t, x, y), per sample b:

    d_t u_k - a_k Δu_k + sum_j C_kj u_j + f_k(u) + s_k(x, y) + d_x g_k(u) + d_y h_k(u) = 0,

    g_k(u) = sum_j Bx_kj u_j + sum_p Qx_kp P_p(u),    h_k(u) = sum_j By_kj u_j + sum_p Qy_kp P_p(u),
    f_k(u) = sum_p Q0_kp P_p(u),                        P_p(u) = u_i u_j for the pairs i <= j (`pairs`).

Scheme: Fourier pseudo-spectral IMEX-SBDF2 (one SBDF1 start step), as `spectral2d.solve_dcr`. The
linear part L(k) = -diag(a)|k|^2 - C - i kx Bx - i ky By couples the components, so it is a K x K
matrix per Fourier mode; it is implicit, and the matrix (3 - 2 dt L)^-1 is formed once per mode and
sample (a batched ``torch.linalg.inv``). The quadratic products are explicit and formed on a 3/2-padded
grid, which removes all aliasing of quadratic terms (the Nyquist row and column are kept at zero, so
the spectra reach |k| <= n/2 - 1 and their products |k| <= n - 2 < 3n/2 - n/2).

Blow-ups as in `spectral2d`: a sample whose solution leaves |u| <= U_MAX (any component) or turns
non-finite gets ``ok = False``, its later frames repeat its last good one, and its state is zeroed.
Every operation is per sample and the loop makes no host synchronisation.

`sample_mv_dcr` draws random members. The reference states only "2-4 components coupled through
reaction and flux terms" and U[-1, 1] coefficients; every other choice is ours (see its docstring).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from foundry.pde.data.families2d import A_RANGE, random_field
from foundry.pde.data.spectral2d import (
    _Padder,
    _steps_per_save,
    per_mode_solver,
    refine_failed,
    sbdf2,
    wavenumbers,
)

Tensor = torch.Tensor


def pairs(k: int) -> list[tuple[int, int]]:
    """The quadratic products u_i u_j (i <= j) in the order of the last axis of Q0, Qx, Qy."""
    return [(i, j) for i in range(k) for j in range(i, k)]


@dataclass
class MVDCRBatch:
    """Arguments of `solve_mv_dcr` for B members with K components.

    u0, source [B, K, n, n]; a [B, K]; lin, flux_x, flux_y [B, K, K]; q0, qx, qy [B, K, P],
    P = K (K + 1) / 2 products in the order of `pairs`.
    """

    u0: Tensor
    a: Tensor
    lin: Tensor
    flux_x: Tensor
    flux_y: Tensor
    q0: Tensor
    qx: Tensor
    qy: Tensor
    source: Tensor


def solve_mv_dcr(
    u0: Tensor,
    a: Tensor,
    lin: Tensor,
    flux_x: Tensor,
    flux_y: Tensor,
    q0: Tensor,
    qx: Tensor,
    qy: Tensor,
    source: Tensor | None = None,
    num_t: int = 101,
    dt: float = 1e-3,
    t_end: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Solve a batch of periodic 2D MV-DCR systems (see the module docstring for the equation).

    Parameters
    ----------
    u0 : [B, K, n, n]
        Initial fields (n even), ``u0[b, k, i, j]`` at (i/n, j/n).
    a : [B, K]
        Diffusivities.
    lin, flux_x, flux_y : [B, K, K]
        C, Bx, By: linear reaction coupling and linear flux matrices (row k = equation k). For a
        well-posed problem Bx kx + By ky should have real eigenvalues (e.g. Bx, By symmetric).
    q0, qx, qy : [B, K, P]
        Coefficients of the products `pairs(K)` in f_k, g_k, h_k.
    source : [B, K, n, n], optional
        s_k(x, y); zero when omitted.
    num_t, dt, t_end, device, dtype
        As in `spectral2d.solve_dcr`: dt must divide ``t_end / (num_t - 1)``.

    Returns
    -------
    u : [B, num_t, K, n, n]
        Frames on t = linspace(0, t_end, num_t); a failed sample repeats its last good frame.
    ok : [B] bool
        False where any component left |u| <= U_MAX or became non-finite.
    """
    dev = torch.device(device) if device is not None else u0.device
    u0 = u0.to(dev, dtype)
    bsz, kk, n, _ = u0.shape
    if n % 2:
        raise ValueError(f"n={n} must be even")
    if q0.shape[-1] != len(pairs(kk)):
        raise ValueError(f"q0 has {q0.shape[-1]} products, K={kk} needs {len(pairs(kk))}")
    steps = _steps_per_save(dt, num_t, t_end)
    pad = _Padder(n, dev, dtype, fine=3 * n // 2 + (3 * n // 2) % 2)  # the 3/2 rule, rounded up to even
    mask = pad.mask
    kx, ky = wavenumbers(n, dev, dtype)
    a, lin, flux_x, flux_y, q0, qx, qy = (v.to(dev, dtype) for v in (a, lin, flux_x, flux_y, q0, qx, qy))
    cdt = torch.complex128 if dtype == torch.float64 else torch.complex64

    # L(k) [B, X, Y, K, K]
    k2 = (kx**2 + ky**2)[None, :, :, None, None]
    eye = torch.eye(kk, device=dev, dtype=dtype)
    lap = -(a[:, None, None, :, None] * eye) * k2
    kxm, kym = kx[None, :, :, None, None], ky[None, :, :, None, None]
    op = lap - lin[:, None, None] - 1j * (kxm * flux_x[:, None, None] + kym * flux_y[:, None, None])
    op = op.to(cdt)
    solve = per_mode_solver(op, dt)

    ii = torch.tensor([p[0] for p in pairs(kk)], device=dev)
    jj = torch.tensor([p[1] for p in pairs(kk)], device=dev)
    # one host sync per call (not per step): linear systems skip the padded transforms entirely
    any_quad = bool((q0 != 0).any() or (qx != 0).any() or (qy != 0).any())
    source_h = torch.fft.rfft2(source.to(dev, dtype)) * mask if source is not None else None

    def explicit(uh: Tensor) -> Tensor:  # [B, K, X, Y] spectra of -(f + d_x g_quad + d_y h_quad) - s
        rhs = torch.zeros_like(uh)
        if any_quad:
            u = pad.to_fine(uh)
            prod_h = pad.from_fine(u[:, ii] * u[:, jj])  # [B, P, X, Y], one batched FFT
            rhs = -(
                torch.einsum("bkp,bpxy->bkxy", q0.to(cdt), prod_h)
                + 1j * kx * torch.einsum("bkp,bpxy->bkxy", qx.to(cdt), prod_h)
                + 1j * ky * torch.einsum("bkp,bpxy->bkxy", qy.to(cdt), prod_h)
            )
        return rhs - source_h if source_h is not None else rhs

    def frame(uh: Tensor) -> Tensor:
        return torch.fft.irfft2(uh, s=(n, n))

    return sbdf2(torch.fft.rfft2(u0) * mask, explicit, solve, frame, num_t, steps, dt, first=u0)


def solve_mv_dcr_refining(
    p: MVDCRBatch, dts: tuple[float, ...] = (2.5e-3, 1.25e-3, 6.25e-4, 3.125e-4), **kwargs: Any
) -> tuple[Tensor, Tensor, Tensor]:
    """`solve_mv_dcr` of ``p`` at ``dts[0]``, re-solving the members that failed at each next, smaller dt.

    The explicit quadratic fluxes limit the step (at 64^2 many members need dt <= 6.25e-4, see
    docs/pde2.md); as `spectral2d.solve_dcr_refining`, one host synchronisation per attempt, and a
    true blow-up costs every attempt. ``kwargs`` go to `solve_mv_dcr`.

    Returns u [B, num_t, K, n, n], ok [B] bool and dt [B] float64 (the last dt tried where not ok).
    """
    return refine_failed(solve_mv_dcr, [getattr(p, f.name) for f in dataclasses.fields(p)], dts, **kwargs)


def _sparse_uniform(gen: torch.Generator, shape: tuple[int, ...], p_nonzero: float) -> Tensor:
    """U[-1, 1] entries, each kept with probability p_nonzero (else 0)."""
    vals = 2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1
    return vals * (torch.rand(shape, generator=gen, dtype=torch.float64) < p_nonzero)


def _symmetric(gen: torch.Generator, batch: int, k: int, p_nonzero: float) -> Tensor:
    """[B, K, K] symmetric sparse U[-1, 1] matrices (real eigenvalues: a hyperbolic, well-posed flux)."""
    upper = torch.triu(_sparse_uniform(gen, (batch, k, k), p_nonzero))
    return upper + torch.triu(upper, diagonal=1).transpose(-1, -2)


def _triples(k: int) -> list[tuple[int, int, int]]:
    return [(i, j, m) for i in range(k) for j in range(i, k) for m in range(j, k)]


def _gradient_flux(gen: torch.Generator, batch: int, k: int) -> Tensor:
    """[B, K, P] quadratic flux coefficients of g = grad_u Phi, Phi a sparse random cubic in u.

    The Jacobian of g is the Hessian of Phi, symmetric, so the characteristic speeds are real; random
    coupled quadratic fluxes without this structure have complex ones where u is large, and those
    members blow up (Hadamard instability; in a 32^2 trial, most K = 4 draws). Each term
    phi u_i u_j u_m of Phi is divided by the largest multiplicity of an index in it, so every
    resulting coefficient of g lies in [-1, 1] (each (k, pair) entry comes from one term only).
    """
    index = {pq: n for n, pq in enumerate(pairs(k))}
    deriv = torch.zeros(len(_triples(k)), k, len(index), dtype=torch.float64)  # d(term t)/d u_k per pair
    for t, tri in enumerate(_triples(k)):
        top = max(tri.count(v) for v in tri)
        for pos, kk in enumerate(tri):
            rest = tuple(sorted(tri[:pos] + tri[pos + 1 :]))
            deriv[t, kk, index[rest]] += 1.0 / top
    phi = _sparse_uniform(gen, (batch, len(_triples(k))), min(1.0, k / len(_triples(k))))
    return torch.einsum("bt,tkp->bkp", phi, deriv)


def sample_mv_dcr(gen: torch.Generator, batch: int, n: int, k: int = 2) -> MVDCRBatch:
    """Draw ``batch`` MV-DCR members with ``k`` components on the n x n grid (CPU, float64).

    Our choices (the reference leaves them open): a_k log-uniform in [1e-3, 1e-2] per component;
    coefficients U[-1, 1], each entry present with a probability that keeps members sparse: C entries
    1/2, flux matrices Bx, By symmetric (so the linear flux is hyperbolic; a non-symmetric one can have
    complex eigenvalues, which make d_t u + B d_x u = 0 ill-posed) with upper entries present with
    probability 1/K; quadratic reaction coefficients with probability 1/P (about one product per
    component); quadratic fluxes g, h the gradients of sparse random cubic potentials (see
    `_gradient_flux`: real characteristic speeds, each cubic term present with probability K / T,
    T = the number of cubic monomials). Initial fields per component as `families2d.random_field` (GRF or sine
    sum, std / max 1); each source s_k is absent with probability 1/2, else a field of scale 0.5.
    """
    if not 1 <= k <= 4:
        raise ValueError(f"k={k}: MV-DCR has 1-4 components")
    npairs = len(pairs(k))
    log_a = math.log(A_RANGE[0]) + (math.log(A_RANGE[1]) - math.log(A_RANGE[0])) * torch.rand(
        batch, k, generator=gen, dtype=torch.float64
    )
    lin = _sparse_uniform(gen, (batch, k, k), 0.5)
    flux_x, flux_y = _symmetric(gen, batch, k, 1 / k), _symmetric(gen, batch, k, 1 / k)
    q0 = _sparse_uniform(gen, (batch, k, npairs), 1 / npairs)
    qx, qy = _gradient_flux(gen, batch, k), _gradient_flux(gen, batch, k)
    u0 = random_field(gen, batch * k, n).reshape(batch, k, n, n)
    present = (torch.rand(batch * k, generator=gen, dtype=torch.float64) < 0.5).double()[:, None, None]
    source = (present * random_field(gen, batch * k, n, sigma=0.5)).reshape(batch, k, n, n)
    return MVDCRBatch(u0, log_a.exp(), lin, flux_x, flux_y, q0, qx, qy, source)
