"""How many units generate and how many train: StreamRL's Algorithm 1 and its elastic rule. Torch-free.

Reference `rl.md` §2.3. A unit is whatever the pool is counted in (a GPU, a tensor-parallel instance,
a node). `p_gen(x)` and `p_train(y)` are the estimated seconds per iteration of generation on x units
and of training on y units; `fit_inverse` builds one from profiled points.

- one pool of n units: enumerate every x + y <= n, minimise max(T_gen, T_train) (the two stages
  overlap under streaming, so the slower one sets the iteration);
- two pools with fixed budgets m (generation) and n (training): keep the slower side whole and shrink
  the faster one to the size whose time is closest to the slower side's;
- elastic: add a generation unit when δ = T_gen - T_train >= δ' = T_gen - P_gen(x + 1), the time one
  more unit would save (equivalently, when P_gen(x + 1) >= T_train: the extra unit never overshoots).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

Estimator = Callable[[int], float]


@dataclass(frozen=True)
class Allocation:
    gen_units: int
    train_units: int
    t_gen: float
    t_train: float

    @property
    def iteration_time(self) -> float:
        """max(T_gen, T_train): the objective Algorithm 1 minimises."""
        return max(self.t_gen, self.t_train)


def allocate_one_pool(n: int, p_gen: Estimator, p_train: Estimator, *, min_gen: int = 1,
                      min_train: int = 1) -> Allocation:
    """Algorithm 1, one pool: every (x, y) with x >= min_gen, y >= min_train, x + y <= n; the least
    max(P_gen(x), P_train(y)). Ties (the slower side unchanged) go to the least P_gen + P_train (a
    spare unit goes where it still shortens the other stage), then to fewer units, then to fewer
    generation units. Each estimator is called once per size (they may be expensive simulations)."""
    if min_gen < 1 or min_train < 1:
        raise ValueError("min_gen, min_train: must be >= 1")
    if min_gen + min_train > n:
        raise ValueError(f"n: {n} units cannot hold min_gen={min_gen} + min_train={min_train}")
    gen, train = cache(p_gen), cache(p_train)
    best: tuple[float, float, int, int] | None = None
    for x in range(min_gen, n - min_train + 1):
        for y in range(min_train, n - x + 1):
            key = (max(gen(x), train(y)), gen(x) + train(y), x + y, x)
            if best is None or key < best:
                best = key
    assert best is not None
    *_, total, x = best
    return Allocation(x, total - x, gen(x), train(total - x))


def allocate_two_pools(m: int, n: int, p_gen: Estimator, p_train: Estimator, *, min_gen: int = 1,
                       min_train: int = 1) -> Allocation:
    """Algorithm 1, two pools of fixed sizes (generation m units, training n units, e.g. two data
    centres): if generation is the faster side, use the k <= m generation units whose P_gen(k) is
    closest to T_train and all n training units; otherwise shrink training symmetrically. Ties go to
    the larger k. As in the paper, "closest" may land slightly above the other side. k stays at least
    `min_gen` / `min_train` (e.g. enough GPUs to hold the training state)."""
    if not (1 <= min_gen <= m and 1 <= min_train <= n):
        raise ValueError(f"m, n: need 1 <= min_gen <= m and 1 <= min_train <= n, got m={m}, n={n}, "
                         f"min_gen={min_gen}, min_train={min_train}")
    t_gen, t_train = p_gen(m), p_train(n)
    if t_gen < t_train:
        k = min(range(min_gen, m + 1), key=lambda k: (abs(p_gen(k) - t_train), -k))
        return Allocation(k, n, p_gen(k), t_train)
    k = min(range(min_train, n + 1), key=lambda k: (abs(p_train(k) - t_gen), -k))
    return Allocation(m, k, t_gen, p_train(k))


def should_add_gen_unit(t_gen: float, t_train: float, t_gen_one_more: float) -> bool:
    """The elastic rule: δ = T_gen - T_train >= δ' = T_gen - T_gen(x + 1)."""
    return t_gen - t_train >= t_gen - t_gen_one_more


def elastic_schedule(x0: int, p_gen_per_iter: Sequence[Estimator], t_train_per_iter: Sequence[float], *,
                     max_units: int) -> list[int]:
    """Generation units at each iteration when the rule is checked once per iteration, before it runs,
    with that iteration's estimates (output lengths grow during training, so P_gen drifts up). At most
    one unit is added per iteration (a node joins without pausing training)."""
    if len(p_gen_per_iter) != len(t_train_per_iter):
        raise ValueError("p_gen_per_iter, t_train_per_iter: need one entry per iteration each")
    x, out = x0, []
    for p_gen, t_train in zip(p_gen_per_iter, t_train_per_iter, strict=True):
        if x < max_units and should_add_gen_unit(p_gen(x), t_train, p_gen(x + 1)):
            x += 1
        out.append(x)
    return out


@dataclass(frozen=True)
class InverseModel:
    """T(u) = a / u + b: the parallel part shrinks with units, a serial part (b) does not. Generation
    plateaus (b > 0: memory-bound tails); training scales (b ≈ 0)."""

    a: float
    b: float

    def __call__(self, units: int) -> float:
        return self.a / units + self.b


def fit_inverse(points: Mapping[int, float]) -> InverseModel:
    """Least squares of T(u) = a/u + b through profiled {units: seconds}, with a, b >= 0: when the
    free fit makes one negative, the better of the two one-term fits (a/u alone, b alone). One point
    fits a/u (perfect scaling)."""
    if not points:
        raise ValueError("points: need at least one (units -> seconds)")
    if any(u <= 0 or not t > 0 for u, t in points.items()):
        raise ValueError("points: units and seconds must be positive")
    u = np.array(sorted(points), dtype=float)
    t = np.array([points[k] for k in sorted(points)], dtype=float)
    if len(u) >= 2:
        (a, b), *_ = np.linalg.lstsq(np.stack([1 / u, np.ones_like(u)], axis=1), t, rcond=None)
        if a >= 0 and b >= 0:
            return InverseModel(float(a), float(b))
    # one term only: the better of a/u (least squares a = Σ(t/u) / Σ(1/u²)) and a constant
    a_only = float(np.sum(t / u) / np.sum(1 / u**2))
    b_only = float(np.mean(t))
    err_a = float(np.sum((a_only / u - t) ** 2))
    err_b = float(np.sum((b_only - t) ** 2))
    return InverseModel(a_only, 0.0) if err_a <= err_b else InverseModel(0.0, b_only)
