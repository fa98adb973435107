"""The schedule search: a greedy start, simulated annealing over adjacent swaps, then a memory pass."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from foundry.rl.fused.baselines import bubble, lower_bound, one_f_one_b
from foundry.rl.fused.config import FusedConfig
from foundry.rl.fused.incremental import IncrementalSchedule
from foundry.rl.fused.memory import memory_pass
from foundry.rl.fused.schedule import (
    AB,
    AF,
    CB,
    CF,
    InvalidSchedule,
    Task,
    evaluate_tokens,
    peak_memory_tokens,
    tokens_to_tasks,
)

# ---------------------------------------------------------------- greedy start


def greedy_orders(
    cfg: FusedConfig, template: str = "", primary: Sequence[int] | None = None
) -> list[list[int]]:
    """Repeatedly start the ready task with the earliest start time (ties: the node's primary model,
    then backward), skipping a secondary-model task that would finish after the primary model's
    earliest ready start on that node. `primary[n]` is node n's primary model (0 actor, 1 critic;
    default the actor everywhere, the reference's greedy). With `template` "primary" (alias "actor"),
    the primary model's tasks on a node follow its 1F1B order: only the next task of that order is a
    candidate; with "both", both models' tasks do."""
    P, pp1 = cfg.pp0, cfg.pp1
    dur = cfg.durations()
    m = (cfg.m0, cfg.m0, cfg.m1, cfg.m1)
    prim = list(primary) if primary is not None else [0] * P
    fin = [[[-1] * m[tok] for tok in range(4)] for _ in range(P)]
    cnt = [[0, 0, 0, 0] for _ in range(P)]
    free = [0] * P
    orders: list[list[int]] = [[] for _ in range(P)]
    tmpl = [
        (one_f_one_b(P, n, cfg.m0, AF, AB), one_f_one_b(pp1, cfg.critic_stage(n), cfg.m1, CF, CB))
        for n in range(P)
    ]
    follows = template in ("primary", "actor")

    def dep(n: int, tok: int) -> int:
        k = cnt[n][tok]
        if template == "both" or (follows and tok // 2 == prim[n]):
            c = cnt[n]
            model_tmpl = tmpl[n][tok // 2]
            pos = c[tok & ~1] + c[tok | 1]
            if pos >= len(model_tmpl) or model_tmpl[pos] != tok:
                return -1
        if k >= m[tok]:
            return -1
        if tok == AF:
            return fin[n - 1][AF][k] if n > 0 else 0
        if tok == AB:
            d = fin[n][AF][k]
            if d >= 0 and n < P - 1:
                d2 = fin[n + 1][AB][k]
                d = -1 if d2 < 0 else max(d, d2)
            return d
        if tok == CF:
            return 0 if n % pp1 == pp1 - 1 else fin[n + 1][CF][k]
        d = fin[n][CF][k]
        if d >= 0 and n % pp1 != 0:
            d2 = fin[n - 1][CB][k]
            d = -1 if d2 < 0 else max(d, d2)
        return d

    remaining = P * 2 * (cfg.m0 + cfg.m1)
    while remaining:
        best = None
        for n in range(P):
            starts = []
            for tok in (AB, AF, CB, CF):
                d = dep(n, tok)
                if d >= 0:
                    starts.append((max(d, free[n]), tok))
            if not starts:
                continue
            pm = prim[n]
            first = [s for s, tok in starts if tok // 2 == pm]
            first_start = min(first) if first else None
            for s, tok in starts:
                if tok // 2 != pm and first_start is not None and s + dur[tok] > first_start:
                    continue
                key = (s, tok // 2 != pm, tok in (AF, CF), n)
                if best is None or key < best[0]:
                    best = (key, n, tok)
        assert best is not None, "greedy found no ready task"
        (s, *_), n, tok = best
        k = cnt[n][tok]
        free[n] = fin[n][tok][k] = s + dur[tok]
        cnt[n][tok] = k + 1
        orders[n].append(tok)
        remaining -= 1
    return orders


def greedy_starts(cfg: FusedConfig) -> Iterator[list[list[int]]]:
    """The greedy variants the search starts from: the reference's greedy, the actor template, both
    templates, then for each split s the primary model's template with the critic primary on nodes
    < s and the actor on the rest, and the other way round. A node where one model's fill and drain are
    short favours that model first; the split variants let the critic lead on one side of the pipeline
    (on exp 9 the critic on nodes 0-4: 621 against 627 for the best of the first three)."""
    yield greedy_orders(cfg)
    yield greedy_orders(cfg, "actor")
    yield greedy_orders(cfg, "both")
    P = cfg.nodes
    for split in range(P + 1):
        for low in (1, 0):
            if (low, split) == (0, P):
                continue  # the actor template above
            yield greedy_orders(cfg, "primary", [low if n < split else 1 - low for n in range(P)])


# ---------------------------------------------------------------- simulated annealing

_CRITICAL_TRIES = 30


@dataclass
class SearchResult:
    orders: list[list[int]]
    makespan: int
    lower_bound: int
    greedy_makespan: int
    peak_memory: int
    bubble: float
    iterations: int
    cpu_s: float
    # the memory pass (see :mod:`foundry.rl.fused.memory`); peak_memory above is after it
    sa_peak_memory: int | None = None  # the annealing's best schedule's peak, before the pass
    memory_cap: int | None = None
    memory_cap_met: bool | None = None  # None without a cap
    memory_iterations: int = 0

    def tasks(self, cfg: FusedConfig) -> list[list[Task]]:
        return tokens_to_tasks(cfg, self.orders)


def _energy(cfg: FusedConfig, ev: tuple[int, int]) -> float:
    # makespan first; the sum of finish times (normalised below 1) breaks plateaus
    n_tasks = cfg.nodes * 2 * (cfg.m0 + cfg.m1)
    return ev[0] + ev[1] / (n_tasks * ev[0] + 1)


def search(
    cfg: FusedConfig,
    budget_s: float = 5.0,
    seed: int = 0,
    t0: float = 1.0,
    t_end: float = 0.005,
    start: list[list[int]] | None = None,
    memory_cap: int | None = None,
    memory_budget_s: float = 0.0,
    max_iters: int | None = None,
    p_critical: float = 0.5,
) -> SearchResult:
    """Greedy start (the best of :func:`greedy_starts`, or `start`), then simulated annealing over
    adjacent swaps of two different tasks on one node, for `budget_s` CPU seconds (process time) or
    until the lower bound is reached. The temperature falls geometrically from `t0` to `t_end` over the
    budget; a move is accepted with probability exp((E_cur - E_new)/T). Energy: makespan, then the sum
    of finish times (scaled below 1) as a tie-break. A fraction `p_critical` of the moves is drawn
    among critical pairs (two adjacent tasks on a longest path, the second starting as the first ends:
    the only swaps that can shorten that path), the rest uniformly.

    Each move is evaluated incrementally (:class:`~foundry.rl.fused.incremental.IncrementalSchedule`):
    the Metropolis random number is drawn first, so the largest acceptable makespan is known and the
    propagation stops as soon as a moved task's finish plus its tail exceeds it; only kept moves update
    the tails. FlexFusion starts at T0 = 10 with ~5.5 M iterations per seed; from the greedy start
    t0 = 1 does best here (from a poor start such as seq-1F1B, t0 = 10 escapes better; a test uses that).

    With `memory_budget_s` > 0 or a `memory_cap`, :func:`~foundry.rl.fused.memory.memory_pass` then
    lowers the peak memory of the best schedule at no cost in makespan for `memory_budget_s` CPU seconds
    (stopping once within the cap); `memory_cap_met` reports whether it got within the cap.

    `max_iters` replaces the time budget by a number of moves (the temperature falls over them): a
    search that is the same on any machine and under any load (tests)."""
    rng = random.Random(seed)
    c0 = time.process_time()
    lb = lower_bound(cfg)
    if start is None:
        # the first three greedy starts, then others for up to a tenth of the budget (all with max_iters)
        limit = None if max_iters is not None else c0 + 0.1 * budget_s
        scored = []
        for i, o in enumerate(greedy_starts(cfg)):
            scored.append((evaluate_tokens(cfg, o), o))
            if scored[-1][0][0] <= lb or (i >= 2 and limit is not None and time.process_time() > limit):
                break
    else:
        scored = [(evaluate_tokens(cfg, start), [list(o) for o in start])]
        if scored[0][0] is None:
            raise InvalidSchedule("the start schedule is invalid")
    ev, greedy = min(scored, key=lambda x: x[0])
    greedy_ms = ev[0]
    sched = IncrementalSchedule(cfg, greedy)
    n_tasks = sched.n_tasks
    dur_sum = sum(sched.dur)

    def energy(ms: int, total_start: int) -> float:
        return ms + (total_start + dur_sum) / (n_tasks * ms + 1)

    ms_cur = sched.makespan()
    e_cur = energy(ms_cur, sched.total_start)
    best, best_ev = sched.tokens(), (ms_cur, sched.sum_finish())
    it = 0
    P = cfg.nodes
    L = len(sched.order[0])
    order, tok = sched.order, sched.tok
    log_ratio = math.log(t_end / t0)
    temp = t0
    rand, randrange = rng.random, rng.randrange
    start_t, tail, dur = sched.start, sched.tail, sched.dur
    while best_ev[0] > lb:
        if it % 64 == 0:
            if max_iters is not None:  # a fixed number of moves: the same result on any machine
                frac = it / max_iters
            else:
                frac = (time.process_time() - c0) / budget_s if budget_s > 0 else 1.0
            if frac >= 1.0:
                break
            temp = t0 * math.exp(log_ratio * frac)
        it += 1
        n = randrange(P)
        p = randrange(L - 1)
        o = order[n]
        if p_critical and rand() < p_critical:
            # only a swap of two tasks on a critical path, the second starting as the first ends, can
            # shorten it: sample positions until one is such a pair (tails are kept exact)
            for _ in range(_CRITICAL_TRIES):
                a, b = o[p], o[p + 1]
                if (
                    tok[a] != tok[b]
                    and start_t[a] + dur[a] == start_t[b]
                    and start_t[a] + tail[a] == ms_cur
                    and start_t[b] + tail[b] == ms_cur
                ):
                    break
                n = randrange(P)
                p = randrange(L - 1)
                o = order[n]
        if tok[o[p]] == tok[o[p + 1]]:
            continue
        # Metropolis with the random number drawn first: the largest energy accepted is known, so the
        # evaluation can stop as soon as the makespan is sure to exceed it
        e_max = e_cur - temp * math.log(1.0 - rand())
        if not sched.swap(n, p, int(e_max)):
            continue
        ms_new = sched.makespan()
        e_new = energy(ms_new, sched.total_start)
        if e_new > e_max:
            sched.undo()
            continue
        sched.commit()
        e_cur, ms_cur = e_new, ms_new
        if (ms_cur, sched.total_start + dur_sum) < best_ev:
            best, best_ev = sched.tokens(), (ms_cur, sched.total_start + dur_sum)
    peak, _ = peak_memory_tokens(best)
    res = SearchResult(
        orders=[list(o) for o in best],
        makespan=best_ev[0],
        lower_bound=lb,
        greedy_makespan=greedy_ms,
        peak_memory=peak,
        bubble=bubble(cfg, best_ev[0]),
        iterations=it,
        cpu_s=time.process_time() - c0,
        sa_peak_memory=peak,
    )
    if memory_budget_s > 0 or memory_cap is not None:
        mem = memory_pass(cfg, res.orders, memory_cap, budget_s=memory_budget_s, seed=seed)
        res.orders, res.makespan, res.peak_memory = mem.orders, mem.makespan, mem.peak_memory
        res.bubble = bubble(cfg, mem.makespan)
        res.memory_cap, res.memory_cap_met, res.memory_iterations = memory_cap, mem.cap_met, mem.iterations
        res.cpu_s = time.process_time() - c0
    return res
