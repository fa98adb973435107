"""The memory pass: lower a schedule's peak activation memory without raising its makespan.

FlexFusion runs a second annealing after the latency search that only accepts schedules no slower than
the best one found and lowers the peak memory. This pass does the same over the search's moves
(adjacent swaps of two different tasks on one node): energy = the largest node peak + the sum of node
peaks (scaled below 1, so a move that lowers one node's peak counts even while another node sets the
max); a move is kept when the schedule stays valid, its makespan is at most the start's, and the
Metropolis test on the energy passes. Given a cap it stops as soon as every node is within it.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from dataclasses import dataclass

from foundry.rl.fused.config import FusedConfig
from foundry.rl.fused.schedule import AF, CF, InvalidSchedule, _SimState, peak_memory_tokens


@dataclass
class MemoryResult:
    orders: list[list[int]]
    makespan: int  # never above the start's
    peak_memory: int
    node_peaks: list[int]
    start_peak_memory: int
    memory_cap: int | None
    cap_met: bool | None  # None without a cap
    iterations: int
    cpu_s: float


def _node_peak(order: list[int]) -> int:
    mem = peak = 0
    for tok in order:
        mem += 1 if tok in (AF, CF) else -1
        if mem > peak:
            peak = mem
    return peak


def _energy(peaks: list[int]) -> float:
    top = max(peaks)
    return top + sum(peaks) / (len(peaks) * (top + 1) + 1)


def memory_pass(
    cfg: FusedConfig,
    orders: list[list[int]],
    memory_cap: int | None = None,
    budget_s: float = 1.0,
    seed: int = 0,
    t0: float = 1.0,
    t_end: float = 0.01,
) -> MemoryResult:
    """Anneal `orders` towards a lower peak memory at no cost in makespan, for `budget_s` CPU seconds
    or until the peak is within `memory_cap` (see the module docs). `cap_met` says whether it got there;
    the returned schedule is the lowest-memory one seen (it is `orders` itself if none was lower)."""
    c0 = time.process_time()
    rng = random.Random(seed)
    cur = [list(o) for o in orders]
    state = _SimState.empty(cfg, cur)
    ev = state.run(cfg, [0] * cfg.nodes)
    if ev is None:
        raise InvalidSchedule("the memory pass's start schedule is invalid")
    target = ev[0]
    peaks = peak_memory_tokens(cur)[1]
    start_peak = max(peaks)
    e_cur = _energy(peaks)
    best, best_peaks, best_ms = cur, list(peaks), target

    def within_cap() -> bool:
        return memory_cap is not None and max(best_peaks) <= memory_cap

    it = 0
    log_ratio = math.log(t_end / t0)
    temp = t0
    while not within_cap():
        if it % 64 == 0:
            frac = (time.process_time() - c0) / budget_s if budget_s > 0 else 1.0
            if frac >= 1.0:
                break
            temp = t0 * math.exp(log_ratio * frac)
        it += 1
        n = rng.randrange(cfg.nodes)
        order = cur[n]
        p = rng.randrange(len(order) - 1)
        a, b = order[p], order[p + 1]
        if a == b:
            continue
        swapped = list(order)
        swapped[p], swapped[p + 1] = b, a
        new_peaks = list(peaks)
        new_peaks[n] = _node_peak(swapped)
        e_new = _energy(new_peaks)
        if e_new > e_cur and rng.random() >= math.exp((e_cur - e_new) / temp):
            continue
        cut = state.start[n][p]
        prefix = [bisect.bisect_left(st, cut) for st in state.start]
        new_orders = list(cur)
        new_orders[n] = swapped
        new_state = state.resumed(cfg, new_orders, prefix)
        new = new_state.run(cfg, prefix)
        if new is None or new[0] > target:
            continue
        cur, state, peaks, e_cur = new_orders, new_state, new_peaks, e_new
        if (max(peaks), sum(peaks)) < (max(best_peaks), sum(best_peaks)):
            best, best_peaks, best_ms = cur, list(peaks), new[0]
    return MemoryResult(
        orders=[list(o) for o in best],
        makespan=best_ms,
        peak_memory=max(best_peaks),
        node_peaks=best_peaks,
        start_peak_memory=start_peak,
        memory_cap=memory_cap,
        cap_met=None if memory_cap is None else max(best_peaks) <= memory_cap,
        iterations=it,
        cpu_s=time.process_time() - c0,
    )
