"""Periodic incompressible Navier-Stokes on the unit square (the NS member of PDEformer-2's DC-DCR family).

Per member b, on [0, 1)^2 x [0, t_end], in the DC-DCR conservation form:

    u_t - nu Δu + (u^2)_x + (u v)_y + p_x + s_u(x, y) = 0,
    v_t - nu Δv + (u v)_x + (v^2)_y + p_y + s_v(x, y) = 0,
    u_x + v_y = 0,                                  p of zero mean.

Scheme: Fourier pseudo-spectral. The velocity lives in the divergence-free subspace: every explicit
right-hand side is Leray-projected, P(w)^ = w^ - k (k . w^) / |k|^2 (the k = 0 mode is kept, so the
mean of s changes the mean flow, which p, being periodic, cannot absorb). Viscosity is implicit, the
advection and forcing explicit: IMEX-SBDF2 with one SBDF1 start step, as `spectral2d.solve_dcr`. The
products u^2, u v, v^2 are formed on the 3/2-padded grid (exact for quadratic terms) and the Nyquist
row and column are kept at zero. The pressure of each saved frame solves the Poisson equation
Δp = -div(A), A = ((u^2)_x + (u v)_y + s_u, (u v)_x + (v^2)_y + s_v), of that frame's velocity, so p
takes the gradient part of the forcing. The initial velocity is projected to divergence-free (and its
Nyquist modes dropped) before stepping; the first saved frame is that projection.

Blow-ups as `spectral2d`: a member whose u, v or p leaves |.| <= U_MAX or turns non-finite gets
``ok = False``, its later frames repeat its last good one and its state is zeroed; every operation is
per member, so a failed member never changes the others.

`sample_ins` draws members. The reference states only the family form and, for the DC-DCR diffusion,
a in [1e-3, 1e-2]. Our choices: the initial velocity is (psi_y, -psi_x) of a stream function psi from
`families2d.random_field` (a GRF or a sine sum, equal odds), scaled per member so that
max(|u0|, |v0|) = 1 on the grid; nu log-uniform in NU_RANGE = [2e-3, 2e-2] (shifted up from the
reference's [1e-3, 1e-2] so that a 64^2 grid resolves every member on t in [0, 1]: on 4 drawn
members, the n = 64 vs n = 128 relative L2 difference of u(1) is <= 2.6e-4 at nu = 2e-3 but up to
2.0e-3 at nu = 1e-3); forcing (s_u, s_v) absent with probability 1/2, else two independent
`random_field` draws of scale 0.5. The pressure is checked against U_MAX as well as the velocity.

Time step: DEFAULT_DT = 1e-3 (`solve_ins_refining` retries 5e-4, 2.5e-4). At n = 64, nu = 2e-3 the
relative L2 difference of u(1) from dt = 2.5e-4 is <= 2.6e-5 (4 members); a drawn batch of 16 at
n = 64 was bounded at dt = 1e-3 throughout. Unforced members decay fast (small scales, nu |k|^2 t
large): max |u| at t = 1 ranged 0.01-1.3 over that batch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from foundry.pde.data.families2d import random_field
from foundry.pde.data.pde2d_builders import _values
from foundry.pde.data.spectral2d import _Padder, _steps_per_save, refine_failed, sbdf2, wavenumbers
from foundry.pde.graph.domain import Domain
from foundry.pde.graph.symbolic import PDE

Tensor = torch.Tensor
NU_RANGE = (2e-3, 2e-2)
DEFAULT_DT = 1e-3
UNKNOWNS = ("u", "v", "p")


@dataclass
class INSBatch:
    """Arguments of `solve_ins` for B members: u0, v0, s_u, s_v [B, n, n]; nu [B]."""

    u0: Tensor
    v0: Tensor
    nu: Tensor
    s_u: Tensor
    s_v: Tensor


class _Spectral:
    """Wavenumbers, projector and the explicit terms on an n x n grid (rfft2 layout)."""

    def __init__(self, n: int, dev: torch.device, dtype: torch.dtype):
        self.n = n
        self.pad = _Padder(n, dev, dtype, fine=3 * n // 2 + (3 * n // 2) % 2)
        self.mask = self.pad.mask
        self.kx, self.ky = wavenumbers(n, dev, dtype)
        k2 = self.kx**2 + self.ky**2
        self.k2 = k2
        self.inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), 0.0)

    def project(self, wh: Tensor) -> Tensor:
        """Leray projection of spectra [B, 2, X, Y] (k = 0 kept)."""
        div = self.kx * wh[:, 0] + self.ky * wh[:, 1]
        return torch.stack(
            [wh[:, 0] - self.kx * div * self.inv_k2, wh[:, 1] - self.ky * div * self.inv_k2], 1
        )

    def forces(self, uh: Tensor, s_h: Tensor | None) -> Tensor:
        """Spectra [B, 2, X, Y] of A = (d_x u^2 + d_y uv, d_x uv + d_y v^2) + s (dealiased)."""
        w = self.pad.to_fine(uh)
        u, v = w[:, 0], w[:, 1]
        prod = self.pad.from_fine(torch.stack([u * u, u * v, v * v], dim=1))
        ax = 1j * self.kx * prod[:, 0] + 1j * self.ky * prod[:, 1]
        ay = 1j * self.kx * prod[:, 1] + 1j * self.ky * prod[:, 2]
        a = torch.stack([ax, ay], dim=1)
        return a + s_h if s_h is not None else a

    def pressure(self, a_h: Tensor) -> Tensor:
        """p^ [B, X, Y] of Δp = -div A (zero mean)."""
        return (1j * self.kx * a_h[:, 0] + 1j * self.ky * a_h[:, 1]) * self.inv_k2


def solve_ins(
    u0: Tensor,
    v0: Tensor,
    nu: Tensor,
    s_u: Tensor | None = None,
    s_v: Tensor | None = None,
    num_t: int = 21,
    dt: float = DEFAULT_DT,
    t_end: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Solve a batch of periodic incompressible Navier-Stokes problems (see the module docstring).

    Parameters
    ----------
    u0, v0 : [B, n, n]
        Initial velocity on the grid (i/n, j/n), n even; it is projected to divergence-free.
    nu : [B]
        Viscosities.
    s_u, s_v : [B, n, n], optional
        Forcing s(x, y) (constant in time); zero when omitted (both or neither).
    num_t, dt, t_end, device, dtype
        As in `spectral2d.solve_dcr`: dt must divide ``t_end / (num_t - 1)``.

    Returns
    -------
    uvp : [B, num_t, 3, n, n]
        Frames (u, v, p) on t = linspace(0, t_end, num_t); a failed member repeats its last good frame.
    ok : [B] bool
        False where u, v or p left |.| <= U_MAX or became non-finite.
    """
    dev = torch.device(device) if device is not None else u0.device
    vel0 = torch.stack([u0, v0], dim=1).to(dev, dtype)
    n = vel0.shape[-1]
    if n % 2:
        raise ValueError(f"n={n} must be even")
    if (s_u is None) != (s_v is None):
        raise ValueError("give both s_u and s_v, or neither")
    steps = _steps_per_save(dt, num_t, t_end)
    sp = _Spectral(n, dev, dtype)
    nu = nu.to(dev, dtype)[:, None, None, None]
    s_h = torch.fft.rfft2(torch.stack([s_u, s_v], 1).to(dev, dtype)) * sp.mask if s_u is not None else None
    lin = -nu * sp.k2  # [B, 1, X, Y]

    def explicit(uh: Tensor) -> Tensor:  # -P A: the projected forces
        return -sp.project(sp.forces(uh, s_h))

    def frame(uh: Tensor) -> Tensor:  # [B, 3, n, n]: u, v and p of the forces A
        spec = torch.cat([uh, sp.pressure(sp.forces(uh, s_h))[:, None]], dim=1)
        return torch.fft.irfft2(spec, s=(n, n))

    def solve(rhs: Tensor, start: bool) -> Tensor:
        return rhs / (1 - dt * lin) if start else rhs / (3 - 2 * dt * lin)

    uh = sp.project(torch.fft.rfft2(vel0) * sp.mask)
    return sbdf2(uh, explicit, solve, frame, num_t, steps, dt)


def solve_ins_refining(
    p: INSBatch, dts: tuple[float, ...] = (1e-3, 5e-4, 2.5e-4), **kwargs: Any
) -> tuple[Tensor, Tensor, Tensor]:
    """`solve_ins` of ``p`` at ``dts[0]``, re-solving the members that failed at each next, smaller dt.

    Returns uvp [B, num_t, 3, n, n], ok [B] bool and dt [B] float64 (the last dt tried where not ok).
    """
    return refine_failed(solve_ins, [getattr(p, f.name) for f in dataclasses.fields(p)], dts, **kwargs)


def velocity_from_stream(psi: Tensor) -> tuple[Tensor, Tensor]:
    """(u, v) = (psi_y, -psi_x) by spectral differentiation of psi [B, n, n] (Nyquist modes dropped)."""
    n = psi.shape[-1]
    kx, ky = wavenumbers(n, psi.device, psi.dtype)
    mask = _Padder(n, psi.device, psi.dtype).mask
    ph = torch.fft.rfft2(psi) * mask
    return torch.fft.irfft2(1j * ky * ph, s=(n, n)), torch.fft.irfft2(-1j * kx * ph, s=(n, n))


def sample_ins(gen: torch.Generator, batch: int, n: int) -> INSBatch:
    """Draw ``batch`` members on the n x n grid (CPU, float64); the choices are in the module docstring."""
    log_nu = math.log(NU_RANGE[0]) + (math.log(NU_RANGE[1]) - math.log(NU_RANGE[0])) * torch.rand(
        batch, generator=gen, dtype=torch.float64
    )
    u0, v0 = velocity_from_stream(random_field(gen, batch, n))
    scale = torch.maximum(u0.abs().amax(dim=(-2, -1)), v0.abs().amax(dim=(-2, -1))).clamp_min(1e-12)
    u0, v0 = u0 / scale[:, None, None], v0 / scale[:, None, None]
    present = (torch.rand(batch, generator=gen, dtype=torch.float64) < 0.5).double()[:, None, None]
    forcing = random_field(gen, 2 * batch, n, sigma=0.5).reshape(batch, 2, n, n)
    return INSBatch(u0, v0, log_nu.exp(), present * forcing[:, 0], present * forcing[:, 1])


def ins_pde(p: INSBatch, b: int, resolution: int = 32) -> PDE:
    """Member ``b`` as a symbolic PDE with unknowns u, v, p (fields on the 2G periodic solver grid).

    Written as the text ``u_t - nu*(u_xx + u_yy) + (u^2)_x + (u*v)_y + p_x + s_u = 0``,
    ``v_t - nu*(v_xx + v_yy) + (u*v)_x + (v^2)_y + p_y + s_v = 0``, ``u_x + v_y = 0`` parses
    (`parser.parse_pde2d`, unknowns "u,v,p"): the same terms in the same order, each ``u*v`` its own
    node, a zero forcing dropped. p has no time derivative, so it takes no initial condition.
    """
    pde = PDE(domain=Domain.square(periodic=True), resolution=resolution)
    u, v, pr = (pde.unknown(name) for name in UNKNOWNS)
    pde.ic(u, _values(p.u0[b], resolution))
    pde.ic(v, _values(p.v0[b], resolution))
    nu = float(p.nu[b])
    momentum = (
        (u, pde.dx(u**2), pde.dy(u * v), pde.dx(pr), p.s_u),
        (v, pde.dx(u * v), pde.dy(v**2), pde.dy(pr), p.s_v),
    )
    for w, flux_x, flux_y, grad_p, source in momentum:
        terms = [pde.dt(w)]
        if nu != 0.0:
            terms.append(-nu * pde.laplacian(w))
        terms += [flux_x, flux_y, grad_p]
        s = _values(source[b], resolution)
        if np.any(s != 0.0):
            terms.append(pde.field(s))
        pde.eq(sum(terms[1:], terms[0]))
    pde.eq(pde.dx(u) + pde.dy(v))
    pde.check()
    return pde
