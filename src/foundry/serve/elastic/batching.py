"""LoongServe's prefill batching: split new requests into batches and give each a ring of instances.

The problem (serving.md §3.4 Step 3; LoongServe's ``minimize_prefill_iteration_time``), as
implemented here exactly:

- Requests are sorted by prompt length, longest first (ties by input order); instances are taken
  in the given order (the scheduler passes them by used tokens ascending, so the emptiest
  instances come first and take the longest prompts).
- A solution splits the sorted requests into consecutive groups ``g_1 .. g_b`` and a prefix of the
  instance order, of some length ``J ≤ m``, into consecutive non-empty groups ``h_1 .. h_b``; batch
  ``t`` prefills ``g_t`` on the ring ``h_t`` (SP degree ``k_t = |h_t|``). Every request is served;
  instances after the prefix stay out of the prefill.
- Constraint: ``Σ_{r∈g_t} l_r ≤ Σ_{i∈h_t} free_i`` (the batch's KV fits in its ring's free slots).
- Objective: minimise ``Σ_t T_{k_t}(g_t) · Σ_{r∈g_t} 1/l_r`` — the sum over requests of their
  batch's prefill time divided by their prompt length (total input-token latency).

``batch_prefills`` solves it by dynamic programming over (requests served, instances used):

    dp[i][j] = min over (s, k) of dp[i−s][j−k] + T_k(last s of the first i) · Σ_{last s} 1/l,

subject to the capacity constraint on the last ``k`` of the first ``j`` instances; the answer is
``min_j dp[n][j]``. This is exact (``brute_force`` enumerates the same solution space).

LoongServe's C++ DP (``longserve_c_scheduler/src/main.cpp``, read at 74a9d4b) also restricts the
last batch's size to at most the argmin of ``dp[i][j−1]`` and its instance count to at least the
argmin of ``dp[i−1][j]`` — a monotonicity assumption that prunes the search, not a constraint of
the problem. ``monotone=True`` applies that pruning. As we read it, it degenerates: ``dp[1][j]``
can only be one batch on all ``j`` instances, so every later state's last batch must use all
``j`` instances too, and the pruned DP only ever returns a single batch (it picks the ring size
only; tests pin this). On LoongServe-like costs its objective was 1.8–2.9× the optimum in our
runs. The scheduler therefore runs the exact DP and uses the pruning only past
``dp_exact_max_requests`` requests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations

PrefillTime = Callable[[int, int, int], float]  # (SP degree k, Σl, Σl²) → s: ESPCostModel.prefill_time


@dataclass(frozen=True, slots=True)
class DPBatch:
    requests: tuple[int, ...]  # indices into the given lengths, longest first
    instances: tuple[int, ...]  # instance ids in the given order
    time: float  # T_k of this batch


@dataclass(frozen=True, slots=True)
class Batching:
    batches: tuple[DPBatch, ...]
    objective: float  # Σ_t T_t · Σ_{r∈t} 1/l_r

    @property
    def max_time(self) -> float:
        return max((b.time for b in self.batches), default=0.0)


def _sorted_order(lengths: Sequence[int]) -> list[int]:
    if any(n < 1 for n in lengths):
        raise ValueError(f"prompt lengths must be >= 1, got {list(lengths)}")
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))


def _prefix(xs: Sequence[float]) -> list[float]:
    out = [0.0]
    for x in xs:
        out.append(out[-1] + x)
    return out


def batch_prefills(lengths: Sequence[int], instances: Sequence[int], free: Sequence[int],
                   prefill_time: PrefillTime, *, monotone: bool = False) -> Batching | None:
    """The batches minimising the objective above, or None if the prompts do not fit.

    `free[j]` is the free KV slots of `instances[j]`. Cost O(n²·m²) exact, less with `monotone`.
    """
    if len(instances) != len(free):
        raise ValueError("instances and free must have the same length")
    order = _sorted_order(lengths)
    n, m = len(order), len(instances)
    if n == 0:
        return Batching((), 0.0)
    ls = [lengths[i] for i in order]
    pl = [0, *_cumsum_int(ls)]
    psq = [0, *_cumsum_int([x * x for x in ls])]
    pinv = _prefix([1.0 / x for x in ls])
    pf = [0, *_cumsum_int(list(free))]
    inf = math.inf
    dp = [[inf] * (m + 1) for _ in range(n + 1)]
    arg = [[(0, 0)] * (m + 1) for _ in range(n + 1)]  # (last batch size, its instance count)
    dp[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            s_max, k_min = i, 1
            if monotone:
                if dp[i][j - 1] < inf:
                    s_max = arg[i][j - 1][0]
                if dp[i - 1][j] < inf:
                    k_min = arg[i - 1][j][1]
            best, best_arg = inf, (0, 0)
            for s in range(1, s_max + 1):  # ties go to the smallest last batch, then the widest ring
                sum_len, sum_sq, inv = pl[i] - pl[i - s], psq[i] - psq[i - s], pinv[i] - pinv[i - s]
                if sum_len > pf[j]:  # not even all j instances hold it, nor a larger s
                    break
                for k in range(j, k_min - 1, -1):  # fewer instances: less room, so stop at the first misfit
                    if sum_len > pf[j] - pf[j - k]:
                        break
                    prev = dp[i - s][j - k]
                    if prev == inf:
                        continue
                    val = prev + prefill_time(k, sum_len, sum_sq) * inv
                    if val < best:
                        best, best_arg = val, (s, k)
            dp[i][j], arg[i][j] = best, best_arg
    j_best = min(range(1, m + 1), key=lambda j: dp[n][j])
    if dp[n][j_best] == inf:
        return None
    batches: list[DPBatch] = []
    i, j = n, j_best
    while i > 0:
        s, k = arg[i][j]
        reqs = tuple(order[i - s:i])
        batches.append(DPBatch(reqs, tuple(instances[j - k:j]),
                               prefill_time(k, pl[i] - pl[i - s], psq[i] - psq[i - s])))
        i, j = i - s, j - k
    batches.reverse()
    return Batching(tuple(batches), dp[n][j_best])


def _cumsum_int(xs: Sequence[int]) -> list[int]:
    out, acc = [], 0
    for x in xs:
        acc += x
        out.append(acc)
    return out


def _compositions(total: int, parts: int) -> Iterator[tuple[int, ...]]:
    """Every way to write `total` as `parts` positive integers in order."""
    for cuts in combinations(range(1, total), parts - 1):
        bounds = (0, *cuts, total)
        yield tuple(b - a for a, b in zip(bounds, bounds[1:], strict=False))


def brute_force(lengths: Sequence[int], instances: Sequence[int], free: Sequence[int],
                prefill_time: PrefillTime) -> Batching | None:
    """The same problem as `batch_prefills` by enumerating every solution (tests; tiny inputs only)."""
    order = _sorted_order(lengths)
    n, m = len(order), len(instances)
    if n == 0:
        return Batching((), 0.0)
    best: Batching | None = None
    for b in range(1, min(n, m) + 1):
        for sizes in _compositions(n, b):
            for used in range(b, m + 1):
                for counts in _compositions(used, b):
                    batches, total, r0, i0, ok = [], 0.0, 0, 0, True
                    for s, k in zip(sizes, counts, strict=True):
                        reqs = order[r0:r0 + s]
                        ls = [lengths[r] for r in reqs]
                        if sum(ls) > sum(free[i0:i0 + k]):
                            ok = False
                            break
                        t = prefill_time(k, sum(ls), sum(x * x for x in ls))
                        total += t * sum(1.0 / x for x in ls)
                        batches.append(DPBatch(tuple(reqs), tuple(instances[i0:i0 + k]), t))
                        r0, i0 = r0 + s, i0 + k
                    if ok and (best is None or total < best.objective):
                        best = Batching(tuple(batches), total)
    return best


def objective(batching: Batching, lengths: Sequence[int]) -> float:
    """Recompute a batching's objective from its batches (tests)."""
    return sum(b.time * sum(1.0 / lengths[r] for r in b.requests) for b in batching.batches)
