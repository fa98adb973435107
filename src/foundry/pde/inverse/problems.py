"""Seeded inverse test problems from the sinus0 family, solved with our own spectral solver.

As in PDEformer-1's inverse experiments (arXiv 2407.06664 §3.4; reference setting: 40 initial
conditions per PDE, 20 random x times 20 random t observed, uniform noise on the observations and
the initial conditions), one PDE is solved from many random initial conditions and observed at a
few scattered points. Two kinds:

- scalar: the unknowns are the PDE's non-zero flux/reaction coefficients (``c01 c02 c03`` of u,
  u^2, u^3 in f0, ``c11 c12 c13`` in f1) and a scalar source ``s``; kappa is known;
- field: the unknown is the source field s(x) on the function encoder's points; the other
  coefficients are known.

Observation points are grid points (x from the 128 solver points, t from frames 1..100), so the
solver-in-the-loop baseline compares without interpolation. Noise: ``u + level * max|u_i| * U[-1, 1]``
per IC i (and the same for each IC), i.e. uniform noise relative to each solution's size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from foundry.pde.data.sinus import SinusParams, params_to_pde, random_field, sample_params
from foundry.pde.data.spectral_solver import checkerboard, solve_periodic
from foundry.pde.graph.symbolic import PDE

SCALAR_NAMES = ("c01", "c02", "c03", "c11", "c12", "c13", "s")
NUM_X, NUM_T, DT = 128, 101, 2e-4


def grid() -> tuple[np.ndarray, np.ndarray]:
    """Solver grid: t (101,) on [0, 1], x (128,) periodic on [-1, 1)."""
    return np.linspace(0.0, 1.0, NUM_T), np.linspace(-1.0, 1.0, NUM_X, endpoint=False)


def get_scalars(p: SinusParams, names: tuple[str, ...]) -> np.ndarray:
    """Values of the named scalar coefficients of a family member."""
    table = {**{f"c0{i + 1}": p.c0[i] for i in range(3)}, **{f"c1{i + 1}": p.c1[i] for i in range(3)}}
    table["s"] = p.source[0]
    return np.array([table[n] for n in names], dtype=np.float64)


def set_scalars(p: SinusParams, names: tuple[str, ...], values: np.ndarray) -> SinusParams:
    """A copy of ``p`` with the named scalar coefficients replaced."""
    c0, c1, source = p.c0.copy(), p.c1.copy(), p.source.copy()
    for n, v in zip(names, values, strict=True):
        if n == "s":
            source[:] = v
        else:
            (c0 if n[1] == "0" else c1)[int(n[2]) - 1] = v
    return replace(p, c0=c0, c1=c1, source=source)


@dataclass
class Observations:
    """Scattered observations of one PDE under several initial conditions.

    Attributes
    ----------
    ic : (n_ic, n) initial conditions on the uniform periodic grid (noisy like the observations)
    t : (n_ic, n_t) observation times of each IC
    x : (n_ic, n_x) observation positions of each IC
    u : (n_ic, n_t, n_x) observed u(t, x), on the tensor grid t_i x x_i
    t_index, x_index : grid indices of t and x (solver frames and points), when known
    """

    ic: np.ndarray
    t: np.ndarray
    x: np.ndarray
    u: np.ndarray
    t_index: np.ndarray | None = None
    x_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.ic.shape[0]
        if self.ic.ndim != 2:
            raise ValueError(f"ic must be (n_ic, n_points), got shape {self.ic.shape}")
        if self.t.ndim != 2 or self.t.shape[0] != n:
            raise ValueError(f"t must be (n_ic={n}, n_t), got shape {self.t.shape}")
        if self.x.ndim != 2 or self.x.shape[0] != n:
            raise ValueError(f"x must be (n_ic={n}, n_x), got shape {self.x.shape}")
        if self.u.shape != (n, self.t.shape[1], self.x.shape[1]):
            raise ValueError(
                f"u_obs must be (n_ic, n_t, n_x) = {(n, self.t.shape[1], self.x.shape[1])}, "
                f"got {self.u.shape}"
            )
        for name in ("ic", "t", "x", "u"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{'u_obs' if name == 'u' else name} contains non-finite values")
        if self.t.min() < 0 or self.t.max() > 1:
            raise ValueError("t must lie in [0, 1] (the model's time interval)")
        if self.x.min() < -1 or self.x.max() > 1:
            raise ValueError("x must lie in [-1, 1] (the model's periodic interval)")

    def coords(self) -> np.ndarray:
        """(n_ic, n_t * n_x, 2) query points (t, x), t-major like ``u.reshape(n_ic, -1)``."""
        tt = np.repeat(self.t[:, :, None], self.x.shape[1], axis=2)
        xx = np.repeat(self.x[:, None, :], self.t.shape[1], axis=1)
        return np.stack([tt, xx], -1).reshape(self.ic.shape[0], -1, 2)


def add_noise(rng: np.random.Generator, a: np.ndarray, level: float) -> np.ndarray:
    """a + level * max|a_i| * U[-1, 1], the scale taken per leading index i."""
    if level < 0:
        raise ValueError(f"noise level must be >= 0, got {level}")
    scale = np.abs(a).reshape(a.shape[0], -1).max(1).reshape((-1,) + (1,) * (a.ndim - 1))
    return a + level * scale * rng.uniform(-1, 1, a.shape)


def observe(
    rng: np.random.Generator, u: np.ndarray, ics: np.ndarray, noise: float, num_t: int = 20, num_x: int = 20
) -> Observations:
    """Pick num_t random frames (t > 0) and num_x random points per IC from u (n_ic, 101, 128); add noise."""
    t_grid, x_grid = grid()
    n_ic = u.shape[0]
    ti = np.stack([np.sort(rng.choice(np.arange(1, u.shape[1]), num_t, replace=False)) for _ in range(n_ic)])
    xi = np.stack([np.sort(rng.choice(u.shape[2], num_x, replace=False)) for _ in range(n_ic)])
    clean = np.stack([u[i][np.ix_(ti[i], xi[i])] for i in range(n_ic)])
    return Observations(
        add_noise(rng, ics, noise), t_grid[ti], x_grid[xi], add_noise(rng, clean, noise), ti, xi
    )


@dataclass
class InverseProblem:
    """A family member (the truth), its initial conditions and clean solutions on the full grid.

    ``names`` are the unknown scalars (empty for a field problem, whose unknown is ``params.source``).
    """

    params: SinusParams
    names: tuple[str, ...]
    ics: np.ndarray  # (n_ic, 128)
    u: np.ndarray  # (n_ic, 101, 128)

    @property
    def truth(self) -> np.ndarray:
        return get_scalars(self.params, self.names) if self.names else self.params.source.copy()

    def pde(self, ic: np.ndarray | None = None) -> PDE:
        """The symbolic PDE with the true coefficients (and the first or given IC)."""
        _, x = grid()
        return params_to_pde(replace(self.params, u0=self.ics[0] if ic is None else ic), x)


def solve_member(p: SinusParams, ics: np.ndarray, dt: float = DT) -> tuple[np.ndarray, np.ndarray]:
    """Solve one family member from every IC (one batch); returns u (n_ic, 101, 128) and ok (n_ic,)."""
    n = ics.shape[0]

    def tile(a: np.ndarray) -> np.ndarray:
        return np.tile(a, (n, 1))

    u, ok = solve_periodic(ics, tile(p.c0), tile(p.c1), tile(p.source), tile(p.kappa), num_t=NUM_T, dt=dt)
    return u, ok & ~checkerboard(u)


def make_problem(
    seed: int, kind: str = "scalar", num_ics: int = 40, max_unknowns: int = 3, max_tries: int = 200
) -> InverseProblem:
    """Draw family members from rng(seed) until one is solvable from all ``num_ics`` ICs.

    scalar: constant kappa, source zero or scalar, 1..max_unknowns non-zero scalars (all unknown).
    field: constant kappa, a source field; the field is the unknown.
    """
    if kind not in ("scalar", "field"):
        raise ValueError(f"kind must be 'scalar' or 'field', got {kind!r}")
    rng = np.random.default_rng(seed)
    _, x = grid()
    for _ in range(max_tries):
        p = sample_params(rng, x)
        if p.kappa_is_field or (p.source_kind == 2) != (kind == "field"):
            continue
        names = tuple(n for n in SCALAR_NAMES if n != "s" or p.source_kind == 1)
        names = tuple(n for n, v in zip(names, get_scalars(p, names), strict=True) if v != 0.0)
        if kind == "field":
            names = ()
        elif not 1 <= len(names) <= max_unknowns:
            continue
        ics = np.stack([random_field(rng, x) for _ in range(num_ics)])
        u, ok = solve_member(p, ics)
        if ok.all():
            return InverseProblem(replace(p, u0=ics[0]), names, ics, u)
    raise RuntimeError(f"no solvable {kind} problem found in {max_tries} draws (seed {seed})")


def describe(p: SinusParams, names: tuple[str, ...]) -> str:
    """The member as PDE text (parseable by `foundry.pde.graph.parser`), unknowns by name."""
    known = {n: v for n, v in zip(SCALAR_NAMES, get_scalars(p, SCALAR_NAMES), strict=True)}

    def coef(name: str) -> str:
        return name if name in names else f"({known[name]:.6g})"

    powers = ("u", "u^2", "u^3")
    f0 = [f"{coef(f'c0{i + 1}')}*{powers[i]}" for i in range(3) if p.c0[i] != 0]
    f1 = [f"{coef(f'c1{i + 1}')}*{powers[i]}" for i in range(3) if p.c1[i] != 0]
    terms = ["u_t", *f0]
    if p.source_kind == 1:
        terms.append(coef("s"))
    elif p.source_kind == 2:
        terms.append("s(x)")
    kappa = f"{p.kappa[0]:.6g}"
    if p.flux_form:
        terms.append(f"({' + '.join([*f1, f'-{kappa}*u_x'])})_x")
    else:
        if f1:
            terms.append(f"({' + '.join(f1)})_x")
        terms.append(f"-{kappa}*u_xx")
    return " + ".join(terms).replace("+ -", "- ") + " = 0"
