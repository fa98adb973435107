"""Shallow-water equations with bathymetry (SWE2D) on the periodic unit square (PDEformer-2 family).

Per member b, unknowns h (water height), u, v (velocities), base height H(x, y) >= 0:

    h_t - a_h Δh + ((h + H) u)_x + ((h + H) v)_y = 0
    u_t - a_u Δu + u u_x + v u_y + g h_x = 0
    v_t - a_v Δv + u v_x + v v_y + g h_y = 0

(the reference's SWE2D form with the diffusion L = -a Δ and no reaction or source terms). The total
depth h + H must stay positive.

Scheme: Fourier pseudo-spectral IMEX-SBDF2 (one SBDF1 start step), as `mv_dcr2d.solve_mv_dcr`. The
implicit part is the diffusion *and* the gravity waves linearised about the member's mean depth
D = mean(h0 + H) (constant in time: the mean of h is conserved exactly), a 3 x 3 matrix per Fourier
mode (rows h, u, v: -a_h k^2, -i kx D, -i ky D / -i kx g, -a_u k^2, 0 / -i ky g, 0, -a_v k^2), inverted
once per call. Why: the gravity waves are the fastest part (speed sqrt(g D), |k| up to ~ 2 pi n / sqrt(2));
explicit SBDF2 (an AB2 extrapolation) is unstable on the imaginary axis, while the implicit BDF2 part is
A-stable, so dt is limited only by the explicit remainder -((h + H - D) u)_x - ((h + H - D) v)_y and
the advection u u_x + v u_y, ... (slow: depth deviations and velocities are O(0.1-1)). RK4 with an
integrating factor would have to resolve the gravity waves explicitly (dt <~ 2.8 / (c |k|_max)) and
gives no second-order test of the scheme family used elsewhere, so SBDF2 is kept. The quadratic
products (h + H - D) u, (h + H - D) v, u u_x + v u_y, u v_x + v v_y are formed on the 3/2-padded grid
(exact for quadratic terms); the Nyquist row and column are zero.

Blow-ups as in `spectral2d`: a member whose h, u or v leaves |.| <= U_MAX or turns non-finite, or
whose depth h + H turns non-positive anywhere on the grid (checked at every saved frame), gets
``ok = False``; its later frames repeat its last good one and its state is zeroed. All operations are
per member, so a failed member never changes the others.

`sample_swe` draws members. The reference fixes the equation form only; all ranges are ours:

* g ~ U[0.1, 1] (gravity-wave speeds sqrt(g D) ~ 0.3-1.7);
* a_h, a_u, a_v each log-uniform in [1e-3, 1e-2] (`families2d.A_RANGE`, as DCR);
* H = 0 with probability 1/2, else H = s_H (1 + 0.5 f / max|f|) with s_H ~ U[0.1, 1] and f a
  `families2d.random_field` (GRF or sine sum), so 0.5 s_H <= H <= 1.5 s_H;
* h0 = m (1 + e f / max|f|), m ~ U[0.5, 1.5], relative amplitude e ~ U[0.05, 0.3] (positive);
* u0, v0 zero with probability 1/2 (both), else each w f / max|f| with w ~ U[0, 0.3].

Resolution and step, measured on 16 sampled members (seed 1): 64^2 resolves them (n = 64 vs
n = 128 relative L2 at t = 1 <= 1e-6 on the 4 with the largest g). Much larger h0 / velocity
amplitudes would steepen into bores (width ~ a / Δu) that 64^2 may not resolve (not measured).
dt = 5e-3 is stable for all of 80 members, but BDF2 phase errors of the fastest gravity waves
(omega = sqrt(g D) |k|) are then up to 25% of the perturbation at t = 1; dt = 1.25e-3 gives
<= 1.7%, 5e-4 <= 0.2% (vs 2.5e-4, at 32^2), so DEFAULT_DT = 1e-3.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from foundry.pde.data.families2d import A_RANGE, random_field, uniform
from foundry.pde.data.pde2d_builders import _values
from foundry.pde.data.spectral2d import (
    _check_frame,
    _Padder,
    _steps_per_save,
    per_mode_solver,
    refine_failed,
    sbdf2,
    wavenumbers,
)
from foundry.pde.graph.domain import Domain
from foundry.pde.graph.symbolic import PDE, Expr

Tensor = torch.Tensor
G_RANGE = (0.1, 1.0)
REL_RANGE = (0.05, 0.3)  # relative amplitude of h0 about its mean
VEL_MAX = 0.3  # largest initial velocity scale
DEFAULT_DT = 1e-3  # accuracy, not stability, sets it (module docstring)


@dataclass
class SWEBatch:
    """Arguments of `solve_swe` for B members: h0, u0, v0, H [B, n, n]; g [B]; a [B, 3] (a_h, a_u, a_v)."""

    h0: Tensor
    u0: Tensor
    v0: Tensor
    H: Tensor
    g: Tensor
    a: Tensor


def solve_swe(
    h0: Tensor,
    u0: Tensor,
    v0: Tensor,
    H: Tensor,
    g: Tensor,
    a: Tensor,
    num_t: int = 21,
    dt: float = DEFAULT_DT,
    t_end: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Solve a batch of periodic 2D shallow-water systems (see the module docstring).

    Parameters
    ----------
    h0, u0, v0 : [B, n, n]
        Initial height and velocities (n even), ``[b, i, j]`` at (i/n, j/n).
    H : [B, n, n]
        Base height (bathymetry term), H >= 0 in the sampled data; h0 + H must be positive.
    g : [B]
        Gravity.
    a : [B, 3]
        Diffusivities of h, u, v.
    num_t, dt, t_end, device, dtype
        As in `spectral2d.solve_dcr`: dt must divide ``t_end / (num_t - 1)``.

    Returns
    -------
    huv : [B, num_t, 3, n, n]
        (h, u, v) on t = linspace(0, t_end, num_t); a failed member repeats its last good frame.
    ok : [B] bool
        False where a field left |.| <= U_MAX, became non-finite, or the depth h + H became <= 0.
    """
    dev = torch.device(device) if device is not None else h0.device
    state0 = torch.stack([h0, u0, v0], dim=1).to(dev, dtype)  # [B, 3, n, n]
    bsz, _, n, _ = state0.shape
    if n % 2:
        raise ValueError(f"n={n} must be even")
    steps = _steps_per_save(dt, num_t, t_end)
    pad = _Padder(n, dev, dtype, fine=3 * n // 2 + (3 * n // 2) % 2)
    mask = pad.mask
    kx, ky = wavenumbers(n, dev, dtype)
    H, g, a = H.to(dev, dtype), g.to(dev, dtype), a.to(dev, dtype)
    cdt = torch.complex128 if dtype == torch.float64 else torch.complex64

    depth = (state0[:, 0] + H).mean(dim=(-2, -1))  # [B] mean depth D, conserved
    # L(k) [B, X, Y, 3, 3]: diffusion and the gravity waves linearised about D
    k2 = (kx**2 + ky**2)[None]
    ikx, iky = (1j * kx).expand_as(k2[0])[None], (1j * ky).expand_as(k2[0])[None]
    bd, bg = depth[:, None, None].to(cdt), g[:, None, None].to(cdt)
    zero = torch.zeros(bsz, *k2.shape[1:], device=dev, dtype=cdt)
    diff = [-(a[:, c, None, None] * k2).to(cdt) for c in range(3)]
    op = torch.stack(
        [
            torch.stack([diff[0], -ikx * bd, -iky * bd], dim=-1),
            torch.stack([-ikx * bg, diff[1], zero], dim=-1),
            torch.stack([-iky * bg, zero, diff[2]], dim=-1),
        ],
        dim=-2,
    )
    solve = per_mode_solver(op, dt)

    # the depth deviation's fixed part H - D, as a spectrum (the mean mode carries -D exactly)
    dev_h = torch.fft.rfft2(H - depth[:, None, None]) * mask

    def explicit(wh: Tensor) -> Tensor:  # [B, 3, X, Y] spectra of the non-linear remainder
        hh, uh, vh = wh[:, 0], wh[:, 1], wh[:, 2]
        eta = hh + dev_h
        fields = torch.stack([eta, uh, vh, ikx * uh, iky * uh, ikx * vh, iky * vh], dim=1)
        e, u, v, ux, uy, vx, vy = pad.to_fine(fields).unbind(1)
        prods = pad.from_fine(torch.stack([e * u, e * v, u * ux + v * uy, u * vx + v * vy], dim=1))
        return torch.stack([-(ikx * prods[:, 0] + iky * prods[:, 1]), -prods[:, 2], -prods[:, 3]], dim=1)

    def check(w: Tensor, ok: Tensor) -> Tensor:
        ok = _check_frame(w, ok)
        return ok & ((w[:, 0] + H) > 0).flatten(1).all(dim=1)

    def frame(wh: Tensor) -> Tensor:
        return torch.fft.irfft2(wh, s=(n, n))

    wh0 = torch.fft.rfft2(state0) * mask
    return sbdf2(wh0, explicit, solve, frame, num_t, steps, dt, first=state0, check=check)


def solve_swe_refining(
    p: SWEBatch, dts: tuple[float, ...] = (DEFAULT_DT, 5e-4, 2.5e-4), **kwargs: Any
) -> tuple[Tensor, Tensor, Tensor]:
    """`solve_swe` of ``p`` at ``dts[0]``, re-solving the failed members at each next, smaller dt
    (`spectral2d.refine_failed`). Returns huv [B, num_t, 3, n, n], ok [B] and dt [B] float64."""
    return refine_failed(solve_swe, [getattr(p, f.name) for f in dataclasses.fields(p)], dts, **kwargs)


def _unit_field(gen: torch.Generator, batch: int, n: int) -> Tensor:
    """[B, n, n] random fields scaled to max |f| = 1."""
    f = random_field(gen, batch, n)
    return f / f.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


def sample_swe(gen: torch.Generator, batch: int, n: int) -> SWEBatch:
    """Draw ``batch`` SWE members on the n x n grid (CPU, float64); ranges in the module docstring."""
    g = uniform(gen, (batch,), *G_RANGE)
    a = uniform(gen, (batch, 3), math.log(A_RANGE[0]), math.log(A_RANGE[1])).exp()
    has_h = (torch.rand(batch, generator=gen, dtype=torch.float64) < 0.5).double()[:, None, None]
    s_h = uniform(gen, (batch,), 0.1, 1.0)[:, None, None]
    H = has_h * s_h * (1 + 0.5 * _unit_field(gen, batch, n))
    mean = uniform(gen, (batch,), 0.5, 1.5)[:, None, None]
    rel = uniform(gen, (batch,), *REL_RANGE)[:, None, None]
    h0 = mean * (1 + rel * _unit_field(gen, batch, n))
    moving = (torch.rand(batch, generator=gen, dtype=torch.float64) < 0.5).double()[:, None, None]
    w = moving * uniform(gen, (batch,), 0.0, VEL_MAX)[:, None, None]
    u0, v0 = w * _unit_field(gen, batch, n), w * _unit_field(gen, batch, n)
    return SWEBatch(h0, u0, v0, H, g, a)


def swe_pde(p: SWEBatch, b: int, resolution: int = 32) -> PDE:
    """Member ``b`` as a symbolic PDE with unknowns h, u, v (fields on the 2G periodic solver grid).

    Written as `parse_pde2d` reads the text (same graph)::

        h_t - a_h*(h_xx + h_yy) + ((h + (H))*u)_x + ((h + (H))*v)_y = 0
        u_t - a_u*(u_xx + u_yy) + u*u_x + v*u_y + g*h_x = 0
        v_t - a_v*(v_xx + v_yy) + u*v_x + v*v_y + g*h_y = 0

    with H one parenthesised function of x and y (a ``cf`` node; each flux has its own, as the text
    has two), and ``(h*u)_x``, ``(h*v)_y`` where H = 0. Zero diffusivities are dropped.
    """
    pde = PDE(domain=Domain.square(periodic=True), resolution=resolution)
    h, u, v = (pde.unknown(name) for name in "huv")
    for w, f in zip((h, u, v), (p.h0, p.u0, p.v0), strict=True):
        pde.ic(w, _values(f[b], resolution))
    base = _values(p.H[b], resolution)
    a_h, a_u, a_v = (float(x) for x in p.a[b])
    g = float(p.g[b])

    def total() -> Expr:
        return h + pde.field(base.copy()) if np.any(base != 0.0) else h

    def diffusion(w: Expr, a: float) -> list[Expr]:
        return [-a * pde.laplacian(w)] if a != 0.0 else []

    eqs = [
        [pde.dt(h), *diffusion(h, a_h), pde.dx(total() * u), pde.dy(total() * v)],
        [pde.dt(u), *diffusion(u, a_u), u * pde.dx(u), v * pde.dy(u), g * pde.dx(h)],
        [pde.dt(v), *diffusion(v, a_v), u * pde.dx(v), v * pde.dy(v), g * pde.dy(h)],
    ]
    for terms in eqs:
        pde.eq(sum(terms[1:], terms[0]))
    return pde
