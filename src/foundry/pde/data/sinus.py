"""The 1D pretraining family of PDEformer-1 ("sinus0") and its random sampling.

u_t + f0(u) + s(x) + (f1(u) - kappa(x) u_x)_x = 0 on (t, x) in [0, 1] x [-1, 1], u(0, x) = g(x),
with f_i(u) = c_i1 u + c_i2 u^2 + c_i3 u^3 (each c zero w.p. 1/2, else U[-3, 3]); s zero, a scalar
in U[-3, 3] or a random field (1/3 each); kappa a scalar or a field, log-uniform in [1e-3, 1].
Periodic, or with a Dirichlet, Neumann or Robin condition a*u + b*u_x = g drawn independently at
each end (Robin: a = cos(alpha), b = sin(alpha), alpha ~ U(0, pi); g zero, U[-3, 3] or taken from
the initial condition, equal odds). Recipe from the official ``data_generation/custom_sinus.py``
(see docs/pde.md for the source).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from foundry.pde.graph.symbolic import PDE, Expr

KAPPA_RANGE = (1e-3, 1.0)
COEF_RANGE = 3.0
# pure transport members (advection share): |c| range and the small diffusivities they get
ADVECTION_SPEED = (0.25, 3.0)
ADVECTION_KAPPA = (1e-3, 1e-2)


@dataclass
class SinusParams:
    """Parameters of one PDE of the family; arrays are values on the grid ``x`` (n,)."""

    c0: np.ndarray  # (3,) coefficients of u, u^2, u^3 in f0
    c1: np.ndarray  # (3,) coefficients of u, u^2, u^3 in f1
    source: np.ndarray  # (n,) s(x)
    source_kind: int  # 0 zero, 1 scalar, 2 field
    kappa: np.ndarray  # (n,) kappa(x) > 0
    kappa_is_field: bool
    u0: np.ndarray  # (n,) initial condition
    flux_form: bool  # True: (f1 - kappa u_x)_x ; False: f1(u)_x - kappa u_xx (constant kappa only)
    bc_left: np.ndarray | None = None  # (3,) a, b, g of a*u + b*u_x = g at x = -1; None: periodic
    bc_right: np.ndarray | None = None  # (3,) the same at x = 1
    bc_kinds: tuple[str, str] | None = None  # dirichlet / neumann / robin at each end


def random_field(rng: np.random.Generator, x: np.ndarray, periodic: bool = True) -> np.ndarray:
    """Sum of two sines with random wavenumbers in 1..4, amplitudes U(0, 1), phases U(0, 2 pi).

    With probability 0.1 the absolute value is taken; the sign is flipped with probability 1/2.
    """
    length = 2.0
    k = rng.integers(1, 5, size=2) if periodic else rng.uniform(0, 4, size=2)
    amp, phase = rng.uniform(0, 1, size=2), rng.uniform(0, 2 * np.pi, size=2)
    f = (amp[:, None] * np.sin(2 * np.pi * k[:, None] * x[None, :] / length + phase[:, None])).sum(0)
    if rng.random() < 0.1:
        f = np.abs(f)
    return -f if rng.random() < 0.5 else f


def _unit_field(rng: np.random.Generator, x: np.ndarray, periodic: bool = True) -> np.ndarray:
    f = random_field(rng, x, periodic)
    span = f.max() - f.min()
    return (f - f.min()) / span if span > 1e-8 else np.full_like(x, 0.5)


BC_KINDS = ("dirichlet", "neumann", "robin")


def _sample_bc(
    rng: np.random.Generator, u0: np.ndarray, x: np.ndarray, end: int, coef_range: float = COEF_RANGE
) -> tuple[str, np.ndarray]:
    kind = BC_KINDS[int(rng.integers(0, 3))]
    if kind == "dirichlet":
        a, b = 1.0, 0.0
    elif kind == "neumann":
        a, b = 0.0, 1.0
    else:
        alpha = rng.uniform(0, np.pi)
        a, b = np.cos(alpha), np.sin(alpha)
    choice = int(rng.integers(0, 3))
    if choice == 0:
        g = 0.0
    elif choice == 1:
        g = rng.uniform(-coef_range, coef_range)
    else:  # consistent with the initial condition
        g = a * u0[end] + b * np.gradient(u0, x, edge_order=2)[end]
    return kind, np.array([a, b, g])


def sample_advection(rng: np.random.Generator, x: np.ndarray, coef_range: float = COEF_RANGE) -> SinusParams:
    """A pure transport member u_t + (c u - kappa u_x)_x = 0 (periodic).

    |c| ~ U[0.25, min(3, coef_range)] with a random sign; kappa = 0 (no diffusion node in the graph,
    the reference's "kappa = 0 only with periodic BC and linear f1") or log-uniform in [1e-3, 1e-2],
    equal odds. In plain sinus0 such members are rare (c11 alone, and kappa log-uniform up to 1 wipes
    the motion out), which is why pure advection was learned weakly (docs/pde.md).
    """
    speed = rng.uniform(ADVECTION_SPEED[0], min(ADVECTION_SPEED[1], coef_range)) * rng.choice([-1.0, 1.0])
    lo, hi = np.log(ADVECTION_KAPPA[0]), np.log(ADVECTION_KAPPA[1])
    kappa = 0.0 if rng.random() < 0.5 else float(np.exp(rng.uniform(lo, hi)))
    u0 = random_field(rng, x, True)
    return SinusParams(
        np.zeros(3),
        np.array([speed, 0.0, 0.0]),
        np.zeros_like(x),
        0,
        np.full_like(x, kappa),
        False,
        u0,
        bool(rng.random() < 0.5),
    )


def sample_params(
    rng: np.random.Generator,
    x: np.ndarray,
    periodic: bool = True,
    coef_range: float = COEF_RANGE,
    advection_share: float = 0.0,
) -> SinusParams:
    """Draw one PDE of the family (non-periodic: ``x`` includes both ends).

    ``coef_range`` bounds the flux coefficients, a scalar source and boundary values: 3 is the
    reference's "cU3"; PDEformer-2 uses 1 ("cU1"). With probability ``advection_share`` (periodic
    only) the member is pure transport (`sample_advection`); at 0 no extra random number is drawn,
    so files made before the option existed are reproduced bit for bit.
    """
    if advection_share > 0 and periodic and rng.random() < advection_share:
        return sample_advection(rng, x, coef_range)
    c = np.where(rng.random(6) < 0.5, 0.0, rng.uniform(-coef_range, coef_range, 6))
    source_kind = int(rng.integers(0, 3))
    if source_kind == 0:
        source = np.zeros_like(x)
    elif source_kind == 1:
        source = np.full_like(x, rng.uniform(-coef_range, coef_range))
    else:
        source = random_field(rng, x, periodic)
    lo, hi = np.log(KAPPA_RANGE[0]), np.log(KAPPA_RANGE[1])
    kappa_is_field = bool(rng.random() < 0.5)
    if kappa_is_field:
        a, b = np.sort(rng.uniform(lo, hi, 2))
        kappa = np.exp(a + (b - a) * _unit_field(rng, x, periodic))
    else:
        kappa = np.full_like(x, np.exp(rng.uniform(lo, hi)))
    u0 = random_field(rng, x, periodic)
    flux_form = bool(kappa_is_field or rng.random() < 0.5)
    p = SinusParams(c[:3], c[3:], source, source_kind, kappa, kappa_is_field, u0, flux_form)
    if not periodic:
        (kl, p.bc_left), (kr, p.bc_right) = (
            _sample_bc(rng, u0, x, 0, coef_range),
            _sample_bc(rng, u0, x, -1, coef_range),
        )
        p.bc_kinds = (kl, kr)
    return p


def params_to_pde(
    p: SinusParams, x: np.ndarray, extra: Callable[[PDE, Expr], list[tuple[bool, Expr]]] | None = None
) -> PDE:
    """The symbolic PDE of one family member, as a user would write it.

    Constant diffusion is written either in flux form ``dx(f1 - kappa*dx(u))`` or expanded
    ``dx(f1) - kappa*dx(dx(u))`` (chosen when sampling), so both ways users write it are in the
    training distribution. ``extra(pde, u)`` adds further terms of another family as
    ``(in_flux, term)`` pairs, each after the polynomial terms of its f0 or f1.
    """
    pde = PDE(x=x)
    u = pde.unknown("u")
    pde.ic(u, p.u0)
    powers = (u, u**2, u**3)
    more = extra(pde, u) if extra is not None else []
    terms = [pde.dt(u)]
    terms += [c * v for c, v in zip(p.c0, powers, strict=True) if c != 0.0]
    terms += [t for in_flux, t in more if not in_flux]
    if p.source_kind == 1:
        terms.append(pde.coef(float(p.source[0])))
    elif p.source_kind == 2:
        terms.append(pde.field(p.source))
    flux = [c * v for c, v in zip(p.c1, powers, strict=True) if c != 0.0]
    flux += [t for in_flux, t in more if in_flux]
    kappa = pde.field(p.kappa) if p.kappa_is_field else pde.coef(float(p.kappa[0]))
    diffusion = -(kappa * pde.dx(u))
    if not p.kappa_is_field and p.kappa[0] == 0.0:  # inviscid (advection share): no diffusion node
        if flux:
            terms.append(pde.dx(sum(flux[1:], flux[0])))
    elif p.flux_form:
        terms.append(pde.dx(sum(flux[1:], flux[0]) + diffusion if flux else diffusion))
    else:
        if flux:
            terms.append(pde.dx(sum(flux[1:], flux[0])))
        terms.append(-float(p.kappa[0]) * pde.dx(pde.dx(u)))
    pde.eq(sum(terms[1:], terms[0]))
    if p.bc_kinds is not None:
        for side, kind, (a, b, g) in zip(("left", "right"), p.bc_kinds, (p.bc_left, p.bc_right), strict=True):
            pde.bc(u, side, kind, value=float(g), alpha=float(a), beta=float(b))
    return pde
