"""Which generation instance runs which sample, in which admission order, at which batch cap. Torch-free.

Three dispatchers over predicted lengths (or any scores that rank like lengths):

- ``random``: a seeded shuffle dealt round-robin (equal counts: how a batch is split across data-
  parallel ranks when nothing is known about lengths);
- ``balanced``: greedy LPT on the sum of predicted lengths (largest first, each to the least-loaded
  instance), longest-predicted-first admission;
- ``skew``: StreamRL's Algorithm 2 (reference `rl.md` §2.4): the top α by predicted rank are the long
  tail, run on a few instances at a small batch; the rest are packed on the others at the large batch;
  the split and the long group's batch minimise the predicted makespan.

The unit is a group (a GRPO prompt with its n samples) when group ids are given: every sample of a
group goes to one instance, admitted together. `makespan` evaluates any plan on the true lengths.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from foundry.rl.latency import PerTokenLatency, instance_finish_times, instance_makespan

Method = Literal["random", "balanced", "skew"]
Combine = Literal["max", "sum"]


@dataclass(frozen=True)
class InstancePlan:
    order: tuple[int, ...]  # sample indices in admission order
    max_batch: int  # most samples running at once on this instance


@dataclass(frozen=True)
class DispatchPlan:
    instances: tuple[InstancePlan, ...]
    method: str
    info: dict[str, object] = field(default_factory=dict)  # e.g. skew's chosen split

    def instance_of(self) -> dict[int, int]:
        """Sample index -> instance index."""
        return {s: k for k, inst in enumerate(self.instances) for s in inst.order}


def _units(num_samples: int, groups: Sequence[object] | None) -> list[list[int]]:
    """The dispatch units: each sample alone, or the samples of each group (first-seen order)."""
    if groups is None:
        return [[i] for i in range(num_samples)]
    if len(groups) != num_samples:
        raise ValueError(f"groups: need one id per sample ({num_samples}), got {len(groups)}")
    by_id: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        by_id.setdefault(g, []).append(i)
    return list(by_id.values())


def _check(predicted: Sequence[float], num_instances: int, max_batch: int) -> None:
    if num_instances < 1:
        raise ValueError(f"num_instances: must be >= 1, got {num_instances}")
    if max_batch < 1:
        raise ValueError(f"max_batch: must be >= 1, got {max_batch}")
    if any(not p >= 0 for p in predicted):
        raise ValueError("predicted: lengths/scores must be >= 0")


def _lpt(units: list[list[int]], work: list[float], num_bins: int) -> list[list[int]]:
    """Greedy LPT: units by decreasing work, each to the bin with the least work so far (lowest index
    on a tie). Returns the unit indices per bin, in the order they were placed (longest first)."""
    bins: list[list[int]] = [[] for _ in range(num_bins)]
    heap = [(0.0, k) for k in range(num_bins)]  # (load, bin): the least loaded on top
    for u in sorted(range(len(units)), key=lambda u: (-work[u], u)):
        load, k = heapq.heappop(heap)
        bins[k].append(u)
        heapq.heappush(heap, (load + work[u], k))
    return bins


def _flatten(units: list[list[int]], unit_ids: list[int]) -> tuple[int, ...]:
    return tuple(s for u in unit_ids for s in units[u])


def dispatch_random(num_samples: int, num_instances: int, max_batch: int, *, seed: int = 0,
                    groups: Sequence[object] | None = None) -> DispatchPlan:
    """Shuffle the units with `seed`, deal them round-robin; admission in the shuffled order."""
    _check([], num_instances, max_batch)
    units = _units(num_samples, groups)
    perm = np.random.default_rng(seed).permutation(len(units)).tolist()
    insts = tuple(InstancePlan(_flatten(units, perm[k::num_instances]), max_batch)
                  for k in range(num_instances))
    return DispatchPlan(insts, "random", {"seed": seed})


def dispatch_balanced(predicted: Sequence[float], num_instances: int, max_batch: int, *,
                      groups: Sequence[object] | None = None) -> DispatchPlan:
    """LPT on the sum of predicted lengths; within an instance, longest predicted first."""
    _check(predicted, num_instances, max_batch)
    units = _units(len(predicted), groups)
    work = [sum(predicted[i] for i in u) for u in units]
    bins = _lpt(units, work, num_instances)
    return DispatchPlan(tuple(InstancePlan(_flatten(units, b), max_batch) for b in bins), "balanced")


def _group_latency(units: list[list[int]], unit_ids: list[int], estimate: Sequence[float], score: list[float],
                   num_instances: int, batch: int, ptl: PerTokenLatency) -> tuple[float, list[list[int]]]:
    """Predicted makespan of `unit_ids` spread by LPT over `num_instances` at `batch`, each instance
    admitting longest predicted first, and the spread."""
    work = [sum(estimate[i] for i in units[u]) for u in unit_ids]
    bins = _lpt([units[u] for u in unit_ids], work, num_instances)
    spread = [[unit_ids[j] for j in b] for b in bins]
    worst = max(instance_makespan(estimate, _lpt_order(units, b, score), batch, ptl) for b in spread)
    return worst, spread


def dispatch_skew(predicted: Sequence[float], num_instances: int, ptl: PerTokenLatency, max_batch: int, *,
                  alpha: float = 0.2, history: Sequence[float] | None = None, combine: Combine = "max",
                  groups: Sequence[object] | None = None,
                  long_batches: Sequence[int] | None = None) -> DispatchPlan:
    """StreamRL's skewness-aware dispatch (Algorithm 2).

    Units are ranked by mean predicted length; the top ``ceil(alpha * units)`` are the long tail. Each
    sample's length estimate is the P90 (long tail) or P50 (the rest) of `history`, observed lengths
    from earlier iterations; without a history, the predictions themselves. For every split
    N_l + N_r = num_instances (both >= 1 when both groups are non-empty) and every long-group batch
    in `long_batches` (default: powers of two up to `max_batch`), each group is spread by LPT on its
    estimates and its latency predicted with `instance_makespan`; the rest always run at `max_batch`.
    The split minimising ``combine`` of the two latencies wins: ``max`` (default) because the groups
    run at the same time on disjoint instances, ``sum`` as one reading of the paper's ⊕. Within an
    instance, admission is longest predicted first (LPT).
    """
    _check(predicted, num_instances, max_batch)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: must be in [0, 1], got {alpha}")
    if combine not in ("max", "sum"):
        raise ValueError(f"combine: 'max' or 'sum', got {combine!r}")
    units = _units(len(predicted), groups)
    score = [sum(predicted[i] for i in u) / len(u) for u in units]
    ranked = sorted(range(len(units)), key=lambda u: (-score[u], u))
    num_long = math.ceil(alpha * len(units))
    long_ids, rest_ids = ranked[:num_long], ranked[num_long:]
    lengths = _estimates(predicted, units, ranked, num_long, history)
    batches = sorted({min(b, max_batch) for b in (long_batches or _powers_of_two(max_batch))})
    if not long_ids or not rest_ids or num_instances == 1:  # one group: it takes every instance
        _, spread = _group_latency(units, long_ids + rest_ids, lengths, score, num_instances, max_batch, ptl)
        insts = [InstancePlan(_lpt_order(units, b, score), max_batch) for b in spread]
        return DispatchPlan(tuple(insts), "skew", {"num_long_instances": 0, "long_batch": max_batch})
    best: tuple[float, int, int] | None = None  # (objective, N_l, long batch)
    spreads: dict[tuple[str, int, int], list[list[int]]] = {}
    for n_long in range(1, num_instances):
        t_rest, spreads["rest", n_long, max_batch] = _group_latency(
            units, rest_ids, lengths, score, num_instances - n_long, max_batch, ptl)
        for b in batches:
            t_long, spreads["long", n_long, b] = _group_latency(units, long_ids, lengths, score, n_long, b,
                                                                ptl)
            objective = max(t_long, t_rest) if combine == "max" else t_long + t_rest
            if best is None or objective < best[0]:
                best = (objective, n_long, b)
    assert best is not None
    objective, n_long, b = best
    insts = [InstancePlan(_lpt_order(units, s, score), b) for s in spreads["long", n_long, b]]
    insts += [InstancePlan(_lpt_order(units, s, score), max_batch)
              for s in spreads["rest", n_long, max_batch]]
    info = {"num_long_instances": n_long, "long_batch": b, "predicted_makespan": objective,
            "num_long_units": len(long_ids), "combine": combine}
    return DispatchPlan(tuple(insts), "skew", info)


def _estimates(predicted: Sequence[float], units: list[list[int]], ranked: list[int], num_long: int,
               history: Sequence[float] | None) -> list[float]:
    """Per-sample length estimates for Algorithm 2's latency model (see `dispatch_skew`)."""
    if history is None or len(history) == 0:
        return [float(p) for p in predicted]
    p90, p50 = (float(v) for v in np.percentile(np.asarray(history, dtype=float), [90, 50]))
    out = [0.0] * len(predicted)
    for r, u in enumerate(ranked):
        for i in units[u]:
            out[i] = p90 if r < num_long else p50
    return out


def _powers_of_two(limit: int) -> list[int]:
    out, b = [], 1
    while b < limit:
        out.append(b)
        b *= 2
    return [*out, limit]


def _lpt_order(units: list[list[int]], unit_ids: list[int], score: list[float]) -> tuple[int, ...]:
    """Longest predicted first; a group's samples stay together."""
    return _flatten(units, sorted(unit_ids, key=lambda u: (-score[u], u)))


def dispatch(method: Method, predicted: Sequence[float], num_instances: int, ptl: PerTokenLatency,
             max_batch: int, *, seed: int = 0, groups: Sequence[object] | None = None, alpha: float = 0.2,
             history: Sequence[float] | None = None, combine: Combine = "max") -> DispatchPlan:
    """Any dispatcher by name, with one signature (each ignores the arguments it does not use)."""
    if method == "random":
        return dispatch_random(len(predicted), num_instances, max_batch, seed=seed, groups=groups)
    if method == "balanced":
        return dispatch_balanced(predicted, num_instances, max_batch, groups=groups)
    if method == "skew":
        return dispatch_skew(predicted, num_instances, ptl, max_batch, alpha=alpha, history=history,
                             combine=combine, groups=groups)
    raise ValueError(f"method: 'random', 'balanced' or 'skew', got {method!r}")


def instance_times(plan: DispatchPlan, lengths: Sequence[float], ptl: PerTokenLatency) -> list[float]:
    """Each instance's makespan on `lengths` (the true ones, to evaluate a plan)."""
    return [instance_makespan(lengths, p.order, p.max_batch, ptl) for p in plan.instances]


def makespan(plan: DispatchPlan, lengths: Sequence[float], ptl: PerTokenLatency) -> float:
    """When the last instance finishes, each simulated with `instance_makespan`."""
    return max(instance_times(plan, lengths, ptl), default=0.0)


def finish_times(plan: DispatchPlan, lengths: Sequence[float], ptl: PerTokenLatency) -> list[float]:
    """Every sample's finish time under `plan` (the stream a trainer would consume)."""
    out = [0.0] * len(lengths)
    for p in plan.instances:
        for s, t in instance_finish_times(lengths, p.order, p.max_batch, ptl).items():
            out[s] = t
    return out
