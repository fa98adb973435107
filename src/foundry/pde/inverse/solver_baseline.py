"""Solver-in-the-loop baselines: the same inverse problems with the numerical solver as forward map.

Each misfit evaluation solves the PDE from all observed ICs with
`foundry.pde.data.spectral_solver.solve_periodic` at the step the test problems were generated
with (dt 2e-4: so, up to the noise, the baseline's forward map is the one that made the data, which
favours it; at the reference data's dt 4e-4 the explicit cubic terms blew up at the true
coefficients of some test problems) and compares at the observation points with the same
normalised RMSE as the model-based methods. scipy's L-BFGS-B minimises it inside the box; its
gradient is a forward difference whose K + 1 solves run as one batch ((K + 1) x n_ic PDEs in one
`solve_periodic` call).

- scalars: the unknown coefficients themselves, from the box centre (0);
- field: a low-dimensional parametrisation s(x) = a_0 + sum_{k=1..K} a_k cos(pi k x) + b_k sin(pi k x)
  (K = 4: 9 numbers, from zero), evaluated on the solver grid. The test problems' fields are sums of
  two such modes (k in 1..4), so this parametrisation contains the truth unless |.| was applied.

A failed solve (|u| > 10 or non-finite) scores a misfit of `FAILED_MISFIT`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize

from foundry.pde.data.sinus import SinusParams
from foundry.pde.data.spectral_solver import solve_periodic
from foundry.pde.inverse.problems import NUM_T, Observations, grid, set_scalars
from foundry.pde.losses.nrmse import NRMSE_EPS

BASELINE_DT = 2e-4
FD_STEP = 1e-3
FAILED_MISFIT = 10.0


@dataclass
class BaselineResult:
    """Recovered values, misfit, wall time and number of PDE solves (one per IC per evaluation)."""

    values: np.ndarray
    misfit: float
    seconds: float
    num_solves: int


def fourier_field(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """s(x) for coefficients (..., 2K + 1) = (a_0, a_1, b_1, ..., a_K, b_K) -> (..., n)."""
    coef = np.asarray(coef, dtype=np.float64)
    k = np.arange(1, (coef.shape[-1] - 1) // 2 + 1)
    cos, sin = np.cos(np.pi * k[:, None] * x), np.sin(np.pi * k[:, None] * x)
    return coef[..., :1] + coef[..., 1::2] @ cos + coef[..., 2::2] @ sin


class _SolverMisfit:
    """Misfit of many parameter sets at once: (S, D) -> (S,), one batched solve of S x n_ic PDEs."""

    def __init__(self, params: SinusParams, obs: Observations, to_params) -> None:
        if obs.t_index is None or obs.x_index is None:
            raise ValueError("the solver baseline needs observations on the solver grid (t_index, x_index)")
        _, x = grid()
        if obs.ic.shape[1] != x.size:
            raise ValueError(f"the solver baseline needs ICs on the {x.size}-point grid")
        self.params, self.obs, self.to_params = params, obs, to_params
        self.num_solves = 0

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        obs, n_ic = self.obs, self.obs.ic.shape[0]
        members = [self.to_params(self.params, th) for th in theta]

        def stack(name: str) -> np.ndarray:
            return np.concatenate([np.tile(np.asarray(getattr(m, name))[None], (n_ic, 1)) for m in members])

        u0 = np.tile(obs.ic, (len(members), 1))
        u, ok = solve_periodic(
            u0, stack("c0"), stack("c1"), stack("source"), stack("kappa"), num_t=NUM_T, dt=BASELINE_DT
        )
        self.num_solves += len(u0)
        u = u.reshape(len(members), n_ic, *u.shape[1:])
        ok = ok.reshape(len(members), n_ic).all(1)
        pred = np.stack(
            [
                [u[s, i][np.ix_(obs.t_index[i], obs.x_index[i])] for i in range(n_ic)]
                for s in range(len(members))
            ]
        ).reshape(len(members), n_ic, -1)
        label = obs.u.reshape(1, n_ic, -1)
        rmse = np.sqrt(np.mean((pred - label) ** 2, -1))
        rms = np.sqrt(np.mean(label**2, -1))
        return np.where(ok, np.mean(rmse / (rms + NRMSE_EPS), -1), FAILED_MISFIT)

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Misfit and its forward-difference gradient from one batched solve of D + 1 parameter sets."""
        pts = np.vstack([theta, theta + FD_STEP * np.eye(theta.size)])
        f = self(pts)
        return float(f[0]), (f[1:] - f[0]) / FD_STEP


def _run(fn: _SolverMisfit, x0: np.ndarray, bounds, max_iter: int) -> tuple[np.ndarray, float]:
    res = minimize(
        fn.value_and_grad, x0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": max_iter}
    )
    return res.x, float(res.fun)


def recover_scalars_solver(
    params: SinusParams,
    names: tuple[str, ...],
    obs: Observations,
    lower: float = -3.0,
    upper: float = 3.0,
    max_iter: int = 30,
) -> BaselineResult:
    """L-BFGS-B over the named scalars of ``params`` (their values in ``params`` are ignored)."""
    start = time.perf_counter()
    fn = _SolverMisfit(params, obs, lambda p, th: set_scalars(p, names, th))
    x, f = _run(fn, np.zeros(len(names)), [(lower, upper)] * len(names), max_iter)
    return BaselineResult(x, f, time.perf_counter() - start, fn.num_solves)


def recover_field_solver(
    params: SinusParams, obs: Observations, num_modes: int = 4, bound: float = 3.0, max_iter: int = 30
) -> BaselineResult:
    """L-BFGS-B over the 2K + 1 Fourier coefficients of s(x); returns s on the solver grid."""
    start = time.perf_counter()
    _, x = grid()
    fn = _SolverMisfit(params, obs, lambda p, c: replace(p, source=fourier_field(c, x)))
    c, f = _run(fn, np.zeros(2 * num_modes + 1), [(-bound, bound)] * (2 * num_modes + 1), max_iter)
    return BaselineResult(fourier_field(c, x), f, time.perf_counter() - start, fn.num_solves)
