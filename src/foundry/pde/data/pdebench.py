"""PDEBench-like benchmark sets, regenerated with our solvers in PDEformer's domain [0, 1] x [-1, 1].

PDEBench files cannot be downloaded here, so each set is solved again from PDEBench-like initial
conditions and written in the project's HDF5 format (the format of `foundry.pde.data.generate`,
graph arrays included), so `PDEDataset`, ``foundry pde eval`` and ``train()`` read it unchanged.

Rescalings (PDEformer-1's ``load_single_pde.py``, see docs/pde-eval.md "Benchmark sets"):

* Burgers. The PDEBench files PDEformer-1 evaluated on solve u_tau + (u^2)_xi = (nu/pi) u_xixi on
  xi in [-1, 1), tau in [0, 2] (the flux u^2 instead of u^2/2 is the pre-Oct-2023 "flux bug").
  With t = tau / 2 (d_tau = d_t / 2) and multiplying by 2:
  u_t + (2u^2 - kappa u_x)_x = 0 with kappa = 2 nu / pi.  `check_burgers_rescaling` in the tests
  solves both forms and compares them.
* Advection. PDEBench u_tau + beta u_xi = 0 on xi in [0, 1), tau in [0, 2]; x = 2 xi - 1, t = tau/2
  give u_t + (4 beta) u_x = 0. Solved in closed form, u(t, x) = g(x - 4 beta t) (periodic).
* Reaction-diffusion. PDEBench u_tau = nu u_xixi + rho u (1 - u) on xi in [0, 1), tau in [0, 1];
  x = 2 xi - 1 gives u_t - rho u + rho u^2 - (4 nu) u_xx = 0. Periodic here.

Initial conditions follow PDEBench's ``init_multi`` (k_tot = 4, two wavenumber draws): a sum over
k = 1..4 of A_k sin(pi k m_k x + phi_k), m_k = how often k was drawn (0, 1 or 2; an undrawn k leaves
the constant A_k sin(phi_k)), A ~ U(0, 1), phi ~ U(0, 2 pi); |.| w.p. 0.1; random sign; a tanh
window on xi = (x + 1)/2 in [xL, xR] (xL ~ U(0.1, 0.45), xR ~ U(0.55, 0.9), width 0.01) w.p. 0.1;
for reaction-diffusion, normalised to [0, 1]. Wavenumbers use the exact period, so g is periodic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from foundry.pde.data.generate import GenerateConfig, _create
from foundry.pde.data.spectral_solver import solve_periodic
from foundry.pde.graph.dag import GRAPH_KEYS, build_graph
from foundry.pde.graph.parser import parse_pde

EQUATIONS = ("burgers", "advection", "reaction_diffusion")
NUM_X, NUM_T = 128, 101
K_TOT = 4


# ---- initial conditions ---------------------------------------------------------------------
@dataclass(frozen=True)
class InitialConditions:
    """Parameters of ``num`` PDEBench-like initial conditions; `values` evaluates them anywhere."""

    amp: np.ndarray  # (num, K_TOT)
    mult: np.ndarray  # (num, K_TOT) times each wavenumber was drawn
    phase: np.ndarray  # (num, K_TOT)
    is_abs: np.ndarray  # (num,) bool
    sign: np.ndarray  # (num,) +-1
    is_window: np.ndarray  # (num,) bool
    x_left: np.ndarray  # (num,) window edges on xi = (x + 1) / 2
    x_right: np.ndarray  # (num,)
    normalize: bool

    def values(self, x: np.ndarray) -> np.ndarray:
        """g(x) for every sample: (num, len(x)); x is taken modulo the period [-1, 1)."""
        x = np.mod(np.asarray(x, dtype=np.float64) + 1.0, 2.0) - 1.0
        k = np.pi * np.arange(1, K_TOT + 1) * self.mult  # (num, K)
        g = (self.amp[..., None] * np.sin(k[..., None] * x[..., None, :] + self.phase[..., None])).sum(-2)
        g = np.where(self.is_abs[:, None], np.abs(g), g) * self.sign[:, None]
        xi = (x + 1.0) / 2.0
        window = 0.5 * (
            np.tanh((xi - self.x_left[:, None]) / 0.01) - np.tanh((xi - self.x_right[:, None]) / 0.01)
        )
        g = np.where(self.is_window[:, None], g * window, g)
        if self.normalize:
            g = g - g.min(axis=-1, keepdims=True)
            g = g / np.maximum(g.max(axis=-1, keepdims=True), 1e-12)
        return g

    def take(self, idx: np.ndarray) -> InitialConditions:
        return replace(
            self,
            **{
                k: getattr(self, k)[idx]
                for k in ("amp", "mult", "phase", "is_abs", "sign", "is_window", "x_left", "x_right")
            },
        )


def sample_initial_conditions(
    rng: np.random.Generator, num: int, normalize: bool = False
) -> InitialConditions:
    """Draw ``num`` initial conditions the way PDEBench's ``init_multi`` does (module docstring)."""
    draws = rng.integers(0, K_TOT, size=(num, 2))
    mult = (draws[..., None] == np.arange(K_TOT)).sum(1)
    return InitialConditions(
        amp=rng.uniform(0, 1, (num, K_TOT)),
        mult=mult,
        phase=rng.uniform(0, 2 * np.pi, (num, K_TOT)),
        is_abs=rng.random(num) < 0.1,
        sign=np.where(rng.random(num) < 0.5, -1.0, 1.0),
        is_window=rng.random(num) < 0.1,
        x_left=rng.uniform(0.1, 0.45, num),
        x_right=rng.uniform(0.55, 0.9, num),
        normalize=normalize,
    )


# ---- a finite-volume Burgers solver for sharp shocks ----------------------------------------------
def solve_burgers_fv(
    u0: np.ndarray, kappa: float, a: float = 2.0, num_t: int = NUM_T, cfl: float = 0.4
) -> np.ndarray:
    """u_t + (a u^2 - kappa u_x)_x = 0 on periodic [-1, 1), t in [0, 1], by finite volumes.

    For shocks thinner than any affordable Fourier grid (Burgers nu = 0.001): MUSCL reconstruction
    with the minmod limiter, local Lax-Friedrichs (Rusanov) flux, central viscous flux and the
    SSP-RK2 (Heun) step, as second order as PDEBench's own solver. Cells are centred on the grid
    points x_i = -1 + 2i/n; the step size is set per saved frame from the batch's max |u|.

    Parameters
    ----------
    u0 : (B, n) cell values at t = 0.

    Returns
    -------
    (B, num_t, n) solution on t = linspace(0, 1, num_t).
    """
    u = np.array(u0, dtype=np.float64)
    n = u.shape[-1]
    dx = 2.0 / n

    def rhs(v: np.ndarray) -> np.ndarray:
        dplus = np.roll(v, -1, -1) - v  # v_{i+1} - v_i
        dminus = v - np.roll(v, 1, -1)
        slope = np.where(dplus * dminus > 0, np.sign(dplus) * np.minimum(abs(dplus), abs(dminus)), 0.0)
        left = v + 0.5 * slope  # state just left of face i+1/2
        right = np.roll(v - 0.5 * slope, -1, -1)  # state just right of face i+1/2
        speed = np.maximum(abs(2 * a * left), abs(2 * a * right))
        flux = 0.5 * a * (left**2 + right**2) - 0.5 * speed * (right - left) - kappa * dplus / dx
        return -(flux - np.roll(flux, 1, -1)) / dx

    out = np.empty((*u.shape[:-1], num_t, n))
    out[..., 0, :] = u
    interval = 1.0 / (num_t - 1)
    for frame in range(1, num_t):
        umax = max(float(np.abs(u).max()), 1e-6)
        dt_max = cfl * min(dx / (2 * a * umax), dx * dx / (2 * kappa) if kappa > 0 else np.inf)
        steps = int(np.ceil(interval / dt_max))
        dt = interval / steps
        for _ in range(steps):
            stage = u + dt * rhs(u)
            u = 0.5 * (u + stage + dt * rhs(stage))
        out[..., frame, :] = u
    return out


# ---- the benchmark equations ----------------------------------------------------------------
@dataclass(frozen=True)
class BenchmarkSpec:
    """One PDEBench equation in PDEformer's domain.

    Parameters
    ----------
    equation : "burgers", "advection" or "reaction_diffusion"
    nu : PDEBench viscosity (Burgers) or diffusivity (reaction-diffusion)
    beta : PDEBench advection speed
    rho : PDEBench reaction rate
    num_x_solve : solver grid (a multiple of 128; subsampled to 128 points); 0 picks a default
    dt : solver time step; 0 picks a default
    """

    equation: str
    nu: float = 0.0
    beta: float = 0.0
    rho: float = 0.0
    num_x_solve: int = 0
    dt: float = 0.0

    def __post_init__(self) -> None:
        if self.equation not in EQUATIONS:
            raise ValueError(f"equation must be one of {EQUATIONS}, got {self.equation!r}")
        need = {"burgers": ("nu",), "advection": ("beta",), "reaction_diffusion": ("nu", "rho")}[
            self.equation
        ]
        for name in need:
            if not getattr(self, name) > 0:
                raise ValueError(f"{self.equation} needs {name} > 0, got {getattr(self, name)}")
        if self.num_x_solve and (self.num_x_solve % NUM_X or self.num_x_solve < NUM_X):
            raise ValueError(f"num_x_solve must be a multiple of {NUM_X}, got {self.num_x_solve}")
        if self.dt < 0:
            raise ValueError(f"dt must be positive, got {self.dt}")
        n, dt = self.default_resolution()
        object.__setattr__(self, "num_x_solve", self.num_x_solve or n)
        object.__setattr__(self, "dt", self.dt or dt)

    def default_resolution(self) -> tuple[int, float]:
        """Solver grid and step, finer for sharper Burgers shocks (refinement studies in docs/pde-eval.md)."""
        if self.equation == "burgers":
            if self.nu >= 0.05:
                return 128, 2e-4
            if self.nu >= 0.005:
                return 512, 1e-4
            return 1024, 0.0  # finite volumes; the step adapts to max |u| (CFL 0.4)
        return NUM_X, 1e-4

    @property
    def uses_finite_volumes(self) -> bool:
        """Burgers shocks at nu < 0.005 are thinner than an affordable Fourier grid resolves."""
        return self.equation == "burgers" and self.nu < 0.005

    @property
    def kappa(self) -> float:
        """Diffusion coefficient in PDEformer's domain (Burgers 2 nu / pi, reaction-diffusion 4 nu)."""
        return {"burgers": 2 * self.nu / np.pi, "reaction_diffusion": 4 * self.nu}.get(self.equation, 0.0)

    @property
    def speed(self) -> float:
        return 4 * self.beta

    @property
    def name(self) -> str:
        if self.equation == "burgers":
            return f"burgers_nu{self.nu:g}"
        if self.equation == "advection":
            return f"advection_beta{self.beta:g}"
        return f"reaction_diffusion_nu{self.nu:g}_rho{self.rho:g}"

    def text(self) -> str:
        """The PDE as a user types it for ``foundry pde predict`` (coefficients at full precision)."""
        if self.equation == "burgers":
            return f"u_t + (2*u^2 - {self.kappa!r}*u_x)_x = 0"
        if self.equation == "advection":
            return f"u_t + ({self.speed!r}*u)_x = 0"
        rho = self.rho
        return f"u_t - {rho!r}*u + {rho!r}*u^2 - {self.kappa!r}*u_xx = 0"

    def solver_description(self) -> str:
        if self.equation == "advection":
            return "closed form u = g(x - 4 beta t)"
        if self.uses_finite_volumes:
            return f"MUSCL finite volumes on {self.num_x_solve} cells, SSP-RK2, subsampled to {NUM_X}"
        return f"Fourier IMEX-SBDF2 on {self.num_x_solve} points, dt {self.dt:g}, subsampled to {NUM_X}"

    def solve(self, ics: InitialConditions) -> tuple[np.ndarray, np.ndarray]:
        """Solutions on the 101 x 128 grid: (u (num, 101, 128), ok (num,))."""
        x = np.linspace(-1.0, 1.0, NUM_X, endpoint=False)
        t = np.linspace(0.0, 1.0, NUM_T)
        num = len(ics.amp)
        if self.equation == "advection":  # exact: u(t, x) = g(x - c t)
            shifted = x[None, :] - self.speed * t[:, None]  # (T, X)
            u = ics.values(shifted.reshape(-1)).reshape(num, NUM_T, NUM_X)
            return u, np.ones(num, dtype=bool)
        n = self.num_x_solve
        xf = np.linspace(-1.0, 1.0, n, endpoint=False)
        c0, c1 = np.zeros((num, 3)), np.zeros((num, 3))
        if self.equation == "burgers":
            c1[:, 1] = 2.0
        else:
            c0[:, 0], c0[:, 1] = -self.rho, self.rho
        if self.uses_finite_volumes:
            return solve_burgers_fv(ics.values(xf), self.kappa)[:, :, :: n // NUM_X], np.ones(num, dtype=bool)
        kappa = np.full((num, n), self.kappa)
        u, ok = solve_periodic(ics.values(xf), c0, c1, np.zeros((num, n)), kappa, num_t=NUM_T, dt=self.dt)
        return u[:, :, :: n // NUM_X], ok


def spec_from_options(
    equation: str, nu: float | None, beta: float | None, rho: float | None
) -> BenchmarkSpec:
    """A spec from CLI-style options, with PDEBench's defaults where an option is not given."""
    if equation == "burgers":
        return BenchmarkSpec("burgers", nu=0.01 if nu is None else nu)
    if equation == "advection":
        return BenchmarkSpec("advection", beta=0.1 if beta is None else beta)
    if equation == "reaction_diffusion":
        return BenchmarkSpec(
            "reaction_diffusion", nu=1.0 if nu is None else nu, rho=1.0 if rho is None else rho
        )
    raise ValueError(f"equation must be one of {EQUATIONS}, got {equation!r}")


# ---- writing a set ----------------------------------------------------------------------------
def _graphs(spec: BenchmarkSpec, u0: np.ndarray, num_mod: int) -> dict[str, np.ndarray]:
    text = spec.text()
    graphs = [build_graph(parse_pde(text, lambda _x, v=v: v), num_mod) for v in u0]
    return {key: np.stack([getattr(g, key) for g in graphs]) for key in GRAPH_KEYS}


def generate_benchmark(
    spec: BenchmarkSpec,
    path: str | Path,
    num_samples: int,
    seed: int = 0,
    num_mod: int = 3,
    chunk_size: int = 64,
) -> int:
    """Write ``num_samples`` accepted samples of ``spec`` to a new HDF5 file; returns the count.

    Chunk i draws its initial conditions from ``rng([seed, i])``; samples the solver rejects
    (non-finite or |u| > 10) are dropped and recorded in ``attrs["num_candidates"]``.
    """
    import h5py

    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; benchmark sets are written once (delete it to regenerate)")
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = GenerateConfig(
        num_samples=num_samples,
        seed=seed,
        num_x=NUM_X,
        num_t=NUM_T,
        dt=spec.dt or 1.0 / (NUM_T - 1),  # finite volumes: adaptive, recorded in attrs['solver']
        num_mod=num_mod,
        chunk_size=chunk_size,
    )
    have, candidates, rejected, chunk = 0, 0, 0, 0
    tmp = path.with_suffix(".partial")
    with h5py.File(tmp, "w") as f:
        while have < num_samples:
            rng = np.random.default_rng([seed, chunk])
            ics = sample_initial_conditions(rng, chunk_size, normalize=spec.equation == "reaction_diffusion")
            u, ok = spec.solve(ics)
            keep = np.flatnonzero(ok)[: num_samples - have]
            candidates += chunk_size
            rejected += int((~ok).sum())
            chunk += 1
            if len(keep) == 0:
                continue
            u0 = u[keep, 0]
            out = {"u": u[keep].astype(np.float32), "u0": u0, **_graphs(spec, u0, num_mod)}
            if "u" not in f:
                _create(f, cfg, out)
            for key, arr in out.items():
                f[key].resize(have + len(keep), axis=0)
                f[key][have:] = arr
            have += len(keep)
        f.attrs["num_samples"] = have
        f.attrs["num_candidates"] = candidates  # initial conditions drawn (whole chunks)
        f.attrs["num_rejected"] = rejected  # of those, rejected by the solver
        f.attrs["next_chunk"] = chunk
        f.attrs["family"] = f"pdebench-{spec.equation}-periodic"
        f.attrs["equation"] = spec.equation
        f.attrs["pde_text"] = spec.text()
        for name in ("nu", "beta", "rho", "kappa", "speed"):
            f.attrs[name] = float(getattr(spec, name))
        f.attrs["num_x_solve"] = spec.num_x_solve
        f.attrs["solver"] = (
            "closed form g(x - 4 beta t)"
            if spec.equation == "advection"
            else (f"Fourier IMEX-SBDF2 on {spec.num_x_solve} points, dt {spec.dt:g}, subsampled to {NUM_X}")
        )
    tmp.replace(path)
    return have
