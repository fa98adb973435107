"""A plain batched particle-swarm optimiser (minimisation inside a box).

PDEformer-1 recovers scalar coefficients with particle swarm optimisation over the model's
prediction (arXiv 2407.06664 §3.4; the official ``inverse_scalar.py`` uses 512 particles, 128
generations, box [-3, 3]) because the data misfit has many local minima. The whole swarm is
evaluated in one call, so a batched forward model sees every particle at once.

Update (Kennedy & Eberhart's global-best swarm with an inertia weight that decays linearly)::

    v <- w v + c1 r1 (p_best - x) + c2 r2 (g_best - x),   x <- clip(x + v, lower, upper)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PSOConfig:
    """Swarm settings.

    Attributes
    ----------
    num_particles : swarm size (the reference uses 512)
    num_generations : update rounds after the initial evaluation (the reference uses 128)
    inertia : (start, end) inertia weight, decayed linearly over the generations
    cognitive, social : pulls towards each particle's own best and the swarm's best
    max_velocity : velocity clamp as a fraction of the box width
    seed : seed of the initial positions and the random pulls
    """

    num_particles: int = 64
    num_generations: int = 50
    inertia: tuple[float, float] = (0.9, 0.4)
    cognitive: float = 1.5
    social: float = 1.5
    max_velocity: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_particles < 2:
            raise ValueError(f"num_particles must be >= 2, got {self.num_particles}")
        if self.num_generations < 0:
            raise ValueError(f"num_generations must be >= 0, got {self.num_generations}")
        if not 0 < self.max_velocity <= 1:
            raise ValueError(f"max_velocity must be in (0, 1], got {self.max_velocity}")


@dataclass
class PSOResult:
    """Best point found, its objective value, and the best value after each generation."""

    x: np.ndarray
    fun: float
    num_evals: int
    history: list[float] = field(default_factory=list)


def pso_minimize(
    objective: Callable[[np.ndarray], np.ndarray],
    lower: np.ndarray,
    upper: np.ndarray,
    config: PSOConfig | None = None,
) -> PSOResult:
    """Minimise ``objective`` over the box [lower, upper].

    Parameters
    ----------
    objective : callable
        Maps positions (P, D) to values (P,); non-finite values count as +inf.
    lower, upper : (D,) arrays
        Box bounds, lower < upper.
    config : PSOConfig, optional
    """
    cfg = config or PSOConfig()
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    if lower.ndim != 1 or lower.shape != upper.shape or not np.all(lower < upper):
        raise ValueError("lower and upper must be 1-D arrays of equal length with lower < upper")
    rng = np.random.default_rng(cfg.seed)
    width = upper - lower
    vmax = cfg.max_velocity * width
    n, d = cfg.num_particles, lower.size

    def evaluate(x: np.ndarray) -> np.ndarray:
        f = np.asarray(objective(x), dtype=np.float64).reshape(-1)
        if f.shape != (n,):
            raise ValueError(f"objective returned shape {f.shape}, expected ({n},)")
        return np.where(np.isfinite(f), f, np.inf)

    x = lower + rng.random((n, d)) * width
    v = rng.uniform(-1, 1, (n, d)) * vmax
    f = evaluate(x)
    p_best, p_val = x.copy(), f.copy()
    g = int(np.argmin(p_val))
    history = [float(p_val[g])]
    for gen in range(cfg.num_generations):
        frac = gen / max(cfg.num_generations - 1, 1)
        w = cfg.inertia[0] + (cfg.inertia[1] - cfg.inertia[0]) * frac
        r1, r2 = rng.random((n, d)), rng.random((n, d))
        v = w * v + cfg.cognitive * r1 * (p_best - x) + cfg.social * r2 * (p_best[g] - x)
        v = np.clip(v, -vmax, vmax)
        x = np.clip(x + v, lower, upper)
        f = evaluate(x)
        better = f < p_val
        p_best[better], p_val[better] = x[better], f[better]
        g = int(np.argmin(p_val))
        history.append(float(p_val[g]))
    return PSOResult(p_best[g].copy(), float(p_val[g]), n * (cfg.num_generations + 1), history)
