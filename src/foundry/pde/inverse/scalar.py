"""Recover scalar coefficients of a PDE from scattered observations, through PDEformer.

PDEformer-1 §3.4 (official ``inverse_scalar.py``): the same PDE is observed under many initial
conditions; the unknown coefficients are the ones whose predicted solutions fit the observations
best in normalised RMSE. Two optimisers over the same misfit:

- `recover_pso`: particle swarm over a box (the reference's choice: the misfit has many local
  minima), each generation one batched forward pass of the whole swarm times all ICs;
- `recover_gradient`: Adam on the coefficients themselves, the gradient flowing back through
  the graph's ``node_scalar`` and the scalar encoder (the model's weights stay fixed); a few
  random starts run as one batch and the best final misfit wins.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from foundry.pde.graph.symbolic import PDE
from foundry.pde.inverse.problems import Observations
from foundry.pde.inverse.pso import PSOConfig, pso_minimize
from foundry.pde.inverse.surrogate import Surrogate, scalar_slots
from foundry.pde.models.pdeformer import PDEformer


@dataclass
class ScalarResult:
    """Recovered values (K,), their misfit, wall time and the number of (candidate, IC) model passes."""

    method: str
    values: np.ndarray
    misfit: float
    seconds: float
    num_model_passes: int


class ScalarInversion:
    """The misfit of candidate coefficients, as a batched differentiable function.

    Parameters
    ----------
    model : PDEformer
    build : callable
        theta (K,) -> the symbolic PDE with those coefficient values (any IC on the ICs' points).
    names : list of str
        Names of the K unknowns (for error messages).
    obs : Observations
    max_batch : int
        Largest number of (candidate, IC) graphs encoded at once.
    """

    def __init__(
        self,
        model: PDEformer,
        build: Callable[[np.ndarray], PDE],
        names: list[str],
        obs: Observations,
        max_batch: int = 640,
    ) -> None:
        graph, base, slots = scalar_slots(build, list(names), model.config.num_mod, model.graph_sizes)
        self.names = list(names)
        self.surrogate = Surrogate(model, graph, obs.ic, obs.coords())
        dev = self.surrogate.device
        self.base = torch.as_tensor(base, dtype=torch.float32, device=dev)
        self.slots = torch.as_tensor(slots, dtype=torch.float32, device=dev)
        self.u_obs = torch.as_tensor(obs.u.reshape(obs.u.shape[0], -1), dtype=torch.float32, device=dev)
        self.max_candidates = max(1, max_batch // self.surrogate.num_ic)
        self.num_model_passes = 0

    def node_scalar(self, theta: torch.Tensor) -> torch.Tensor:
        """theta [S, K] -> the graphs' node_scalar [S, n_scalar] (differentiable)."""
        return self.base + theta @ self.slots

    def misfit(self, theta: torch.Tensor) -> torch.Tensor:
        """theta [S, K] -> normalised RMSE to the observations [S] (differentiable)."""
        self.num_model_passes += theta.shape[0] * self.surrogate.num_ic
        return self.surrogate.misfit(self.node_scalar(theta), self.u_obs)

    @torch.no_grad()
    def misfit_numpy(self, theta: np.ndarray) -> np.ndarray:
        """Batched, chunked misfit for derivative-free optimisers: (S, K) -> (S,)."""
        t = torch.as_tensor(theta, dtype=torch.float32, device=self.surrogate.device)
        parts = [self.misfit(t[i : i + self.max_candidates]) for i in range(0, len(t), self.max_candidates)]
        return torch.cat(parts).cpu().numpy().astype(np.float64)


def _box(lower: np.ndarray | float, upper: np.ndarray | float, k: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.broadcast_to(np.asarray(lower, float), (k,)), np.broadcast_to(np.asarray(upper, float), (k,))
    if not np.all(lo < hi):
        raise ValueError("lower bounds must be below upper bounds")
    return lo.copy(), hi.copy()


def recover_pso(
    inv: ScalarInversion,
    lower: np.ndarray | float = -3.0,
    upper: np.ndarray | float = 3.0,
    config: PSOConfig | None = None,
) -> ScalarResult:
    """Particle swarm over the box; every generation is one batched model evaluation."""
    lo, hi = _box(lower, upper, len(inv.names))
    start, passes = time.perf_counter(), inv.num_model_passes
    res = pso_minimize(inv.misfit_numpy, lo, hi, config)
    return ScalarResult("pso", res.x, res.fun, time.perf_counter() - start, inv.num_model_passes - passes)


def recover_gradient(
    inv: ScalarInversion,
    lower: np.ndarray | float = -3.0,
    upper: np.ndarray | float = 3.0,
    num_starts: int = 4,
    num_steps: int = 150,
    lr: float = 0.05,
    seed: int = 0,
) -> ScalarResult:
    """Adam on the coefficients from ``num_starts`` uniform random starts in the box (one batch).

    After each step the coefficients are clipped into the box; the learning rate follows a cosine
    to zero. Returns the start with the lowest final misfit.
    """
    if num_starts < 1 or num_steps < 1 or lr <= 0:
        raise ValueError("num_starts and num_steps must be >= 1 and lr > 0")
    lo, hi = _box(lower, upper, len(inv.names))
    start, passes = time.perf_counter(), inv.num_model_passes
    rng = np.random.default_rng(seed)
    dev = inv.surrogate.device
    lo_t, hi_t = (torch.as_tensor(a, dtype=torch.float32, device=dev) for a in (lo, hi))
    theta = torch.as_tensor(
        lo + rng.random((num_starts, lo.size)) * (hi - lo), dtype=torch.float32, device=dev
    )
    theta.requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, num_steps)
    for _ in range(num_steps):
        opt.zero_grad()
        inv.misfit(theta).sum().backward()  # starts are independent: the sum's gradient is each one's
        opt.step()
        sched.step()
        with torch.no_grad():
            theta.copy_(torch.maximum(torch.minimum(theta, hi_t), lo_t))
    final = inv.misfit_numpy(theta.detach().cpu().numpy())
    best = int(np.argmin(final))
    return ScalarResult(
        "gradient",
        theta.detach().cpu().numpy()[best].astype(np.float64),
        float(final[best]),
        time.perf_counter() - start,
        inv.num_model_passes - passes,
    )
