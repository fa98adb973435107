"""Seeded 2-D inverse test problems (periodic unit square), solved with `spectral2d`.

The 2-D counterpart of `foundry.pde.inverse.problems`: one PDEformer-2 family member (reference
§8) is solved from ``num_ics`` random initial conditions on the 2G x 2G solver grid (G = 32, the
function grid of the "2-XS" model; 101 frames on [0, 1]) and observed at ``num_points`` scattered
points (t, x, y) per IC. The points are solver grid points (frames 1..100, x, y = i / 2G), so the
truth needs no interpolation; the graph's functions are every second solver point
(`pde2d_builders.subsample`), as in the training data. Noise as in 1-D (`problems.add_noise`):
``level * max|u_i| * U[-1, 1]`` per IC, on the observations and on the initial conditions.

Problems (``kind``):

- ``wave``: u_t - v = 0, v_t + mu v - c2 (u_xx + u_yy) = 0; unknowns c2 (and mu), v0 = 0;
- ``dcr``: u_t - a Δu + c01 u = 0, |c01| in [0.3, 1]; unknowns a (diffusivity) and c01 (reaction);
- ``source``: u_t - a Δu + s(x, y) = 0 with a known; the unknown is the field s on the G x G grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from foundry.pde.data.families2d import random_field
from foundry.pde.data.pde2d_builders import dcr_equation, subsample, wave_equations
from foundry.pde.data.spectral2d import solve_dcr, solve_wave
from foundry.pde.graph.domain import Domain
from foundry.pde.graph.symbolic import PDE
from foundry.pde.inverse.problems import add_noise

KINDS = ("wave", "dcr", "source")
RESOLUTION, NUM_T = 32, 101


@dataclass
class ScatteredObservations:
    """Scattered observations of one PDE under several initial conditions (any dimension).

    Attributes
    ----------
    ic : (n_ic, n_pts) or (n_ic, R, n_pts)
        Initial conditions on the PDE's function points (R: ICs of the first R unknowns).
    points : (n_ic, Q, 1 + d)
        Observation points (t, x[, y]); t in [0, 1], space inside ``lower``..``upper``.
    u : (n_ic, Q)
        Observed target unknown at the points.
    """

    ic: np.ndarray
    points: np.ndarray
    u: np.ndarray
    lower: tuple[float, ...] = (0.0, 0.0)
    upper: tuple[float, ...] = (1.0, 1.0)

    def __post_init__(self) -> None:
        n = self.ic.shape[0]
        if self.ic.ndim not in (2, 3):
            raise ValueError(f"ic must be (n_ic, n_pts) or (n_ic, R, n_pts), got shape {self.ic.shape}")
        d = len(self.lower)
        if self.points.ndim != 3 or self.points.shape[0] != n or self.points.shape[2] != 1 + d:
            raise ValueError(f"points must be (n_ic={n}, Q, {1 + d}), got shape {self.points.shape}")
        if self.u.shape != self.points.shape[:2]:
            raise ValueError(f"u must be (n_ic, Q) = {self.points.shape[:2]}, got {self.u.shape}")
        for name in ("ic", "points", "u"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name} contains non-finite values")
        t, space = self.points[..., 0], self.points[..., 1:]
        if t.min() < 0 or t.max() > 1:
            raise ValueError("t must lie in [0, 1] (the model's time interval)")
        if np.any(space < np.asarray(self.lower)) or np.any(space > np.asarray(self.upper)):
            raise ValueError(f"observation points must lie in the domain {self.lower}..{self.upper}")

    def coords(self) -> np.ndarray:
        """(n_ic, Q, 1 + d) query points, the model's coordinate order (t, x[, y])."""
        return self.points


def sample_indices(rng: np.random.Generator, n_ic: int, num_points: int, num_t: int, n: int) -> np.ndarray:
    """(n_ic, Q, 3) distinct random (frame, i, j) per IC: frames 1..num_t-1, i, j in 0..n-1."""
    total = (num_t - 1) * n * n
    if num_points > total:
        raise ValueError(f"num_points={num_points} exceeds the {total} grid points with t > 0")
    flat = np.stack([rng.choice(total, num_points, replace=False) for _ in range(n_ic)])
    f, rest = np.divmod(flat, n * n)
    i, j = np.divmod(rest, n)
    return np.stack([f + 1, i, j], -1)


def observe2d(
    rng: np.random.Generator, u: np.ndarray, ics: np.ndarray, noise: float, num_points: int = 200
) -> ScatteredObservations:
    """Observe u (n_ic, num_t, n, n) on [0, 1] x [0, 1)^2 at random grid points; add noise to u and ics."""
    n_ic, num_t, n, _ = u.shape
    idx = sample_indices(rng, n_ic, num_points, num_t, n)
    clean = np.stack([u[b][idx[b, :, 0], idx[b, :, 1], idx[b, :, 2]] for b in range(n_ic)])
    points = np.stack([idx[..., 0] / (num_t - 1), idx[..., 1] / n, idx[..., 2] / n], -1)
    noisy_ic = add_noise(rng, ics.reshape(-1, ics.shape[-1]), noise).reshape(ics.shape)  # per row: 0 stays 0
    return ScatteredObservations(noisy_ic, points, add_noise(rng, clean, noise))


# ---- PDE templates -------------------------------------------------------------------------------
def _pde() -> PDE:
    return PDE(domain=Domain.square(periodic=True), resolution=RESOLUTION)


def wave_template(names: tuple[str, ...], known: dict[str, float]) -> Callable[[np.ndarray], PDE]:
    """theta -> the periodic wave system with ``names`` (of c2, mu) = theta, the rest from ``known``."""
    zero = np.zeros(RESOLUTION**2)

    def build(theta: np.ndarray) -> PDE:
        c = {**known, **dict(zip(names, np.asarray(theta, float).tolist(), strict=True))}
        pde = _pde()
        u, v = pde.unknown("u"), pde.unknown("v")
        pde.ic(u, zero)
        pde.ic(v, zero)
        wave_equations(pde, u, v, c["mu"], c["c2"], None)
        return pde

    return build


def dcr_template(names: tuple[str, ...], known: dict[str, float]) -> Callable[[np.ndarray], PDE]:
    """theta -> u_t - a Δu + c01 u = 0 with ``names`` (of a, c01) = theta, the rest from ``known``."""
    zero = np.zeros(RESOLUTION**2)

    def build(theta: np.ndarray) -> PDE:
        c = {**known, **dict(zip(names, np.asarray(theta, float).tolist(), strict=True))}
        pde = _pde()
        u = pde.unknown("u")
        pde.ic(u, zero)
        dcr_equation(pde, u, c["a"], [c["c01"], 0.0, 0.0], [0.0] * 3, [0.0] * 3, None)
        return pde

    return build


def source_template(a: float) -> Callable[[np.ndarray], PDE]:
    """s (G*G,) -> u_t - a Δu + s(x, y) = 0 (s flattened row-major on the G x G grid)."""
    zero = np.zeros(RESOLUTION**2)

    def build(s: np.ndarray) -> PDE:
        pde = _pde()
        u = pde.unknown("u")
        pde.ic(u, zero)
        dcr_equation(pde, u, a, [0.0] * 3, [0.0] * 3, [0.0] * 3, np.asarray(s, float))
        return pde

    return build


# ---- problems ------------------------------------------------------------------------------------
@dataclass
class Problem2D:
    """A 2-D inverse problem: observations, the template of the unknowns, truth and search box."""

    kind: str
    description: str
    names: tuple[str, ...]  # scalar unknowns; empty for a field problem
    truth: np.ndarray  # (K,) scalars or (G*G,) field
    obs: ScatteredObservations
    build: Callable[[np.ndarray], PDE]
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


def _ics(gen: torch.Generator, num_ics: int, n: int) -> torch.Tensor:
    return random_field(gen, num_ics, n)


def make_problem2d(
    kind: str,
    seed: int = 0,
    num_ics: int = 8,
    num_points: int = 200,
    noise: float = 0.01,
    unknowns: tuple[str, ...] | None = None,
) -> Problem2D:
    """Draw a member of ``kind`` (see the module doc) from ``seed``, solve and observe it.

    ``unknowns`` picks the scalars to recover (wave: default ("c2", "mu"); dcr: ("a", "c01")).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng([seed, 2])
    n = 2 * RESOLUTION
    u0 = _ics(gen, num_ics, n)

    def tile(v: float) -> torch.Tensor:
        return torch.full((num_ics,), v, dtype=torch.float64)

    if kind == "wave":
        names = unknowns or ("c2", "mu")
        c2, mu = (
            0.25 + 1.75 * float(torch.rand(1, generator=gen)),
            0.1 + 0.8 * float(torch.rand(1, generator=gen)),
        )
        u, ok = solve_wave(u0, torch.zeros_like(u0), tile(c2), tile(mu), num_t=NUM_T)
        values = {"c2": c2, "mu": mu}
        lower = {"c2": 0.01, "mu": 0.0}
        upper = {"c2": 4.0, "mu": 1.0}
        build = wave_template(names, values)
        ic = np.stack([subsample(u0, RESOLUTION), np.zeros((num_ics, RESOLUTION, RESOLUTION))], 1)
        desc = f"u_t - v = 0, v_t + {mu:.4g} v - {c2:.4g} (u_xx + u_yy) = 0 (periodic, v0 = 0)"
    else:
        a = float(np.exp(np.log(2e-3) + np.log(5.0) * float(torch.rand(1, generator=gen))))  # [2e-3, 1e-2]
        zeros = torch.zeros(num_ics, 3, dtype=torch.float64)
        if kind == "dcr":
            names = unknowns or ("a", "c01")
            r = float(torch.rand(1, generator=gen))  # |c01| in [0.3, 1], either sign: a reaction to see
            c01 = (0.3 + 1.4 * r) if r < 0.5 else -(0.3 + 1.4 * (r - 0.5))
            c0 = zeros.clone()
            c0[:, 0] = c01
            u, ok = solve_dcr(u0, tile(a), c0, zeros, zeros, None, num_t=NUM_T)
            values = {"a": a, "c01": c01}
            lower = {"a": 0.0, "c01": -1.5}
            upper = {"a": 0.02, "c01": 1.5}
            build = dcr_template(names, values)
            desc = f"u_t - {a:.4g} (u_xx + u_yy) + {c01:.4g} u = 0 (periodic)"
        else:
            names = ()
            s = random_field(gen, 1, n, sigma=0.5).expand(num_ics, -1, -1)
            u, ok = solve_dcr(u0, tile(a), zeros, zeros, zeros, s, num_t=NUM_T)
            build = source_template(a)
            truth = subsample(s[0], RESOLUTION).reshape(-1)
            desc = f"u_t - {a:.4g} (u_xx + u_yy) + s(x, y) = 0 (periodic, s unknown)"
        ic = subsample(u0, RESOLUTION)
    if not bool(ok.all()):
        raise RuntimeError(f"{kind} problem (seed {seed}): the solver failed for some ICs")
    ic = ic.reshape(num_ics, -1, RESOLUTION**2) if ic.ndim == 4 else ic.reshape(num_ics, -1)
    obs = observe2d(rng, u.numpy(), ic, noise, num_points)
    if names:
        truth = np.array([values[k] for k in names])
        lo, hi = np.array([lower[k] for k in names]), np.array([upper[k] for k in names])
        return Problem2D(kind, desc, tuple(names), truth, obs, build, lo, hi)
    return Problem2D(kind, desc, (), truth, obs, build)
