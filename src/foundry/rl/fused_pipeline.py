"""RLHFuse's intra-stage fusion: a fused actor/critic bidirectional pipeline and its schedule search.

Torch-free, unit-time model (see ``docs/rl-fused-pipeline.md``). Two models train together on ``pp0``
nodes: the large one (model 0, "actor") has ``pp0`` stages, stage ``s`` on node ``s``, ``m0``
micro-batches; the small one (model 1, "critic") has ``pp1`` stages and is replicated ``pp0 // pp1``
times on contiguous node blocks, each replica running ``m1`` micro-batches in the *reverse* direction
(replica ``r``'s stage ``j`` on node ``r * pp1 + pp1 - 1 - j``). A forward of model ``i`` takes ``f_i``,
a backward ``2 f_i``.

A schedule is, per node, the order of its tasks. Two encodings:

- explicit: per node a list of :class:`Task` (model, replica, micro-batch, stage, backward) - what
  :func:`check_schedule` and :func:`evaluate_schedule` take;
- tokens (the search's encoding): per node a list of ints ``AF=0, AB=1, CF=2, CB=3``; the k-th forward
  (backward) of a model on a node is micro-batch k. :func:`tokens_to_tasks` converts.

Makespans come from list scheduling: each task starts when its node has finished the previous task in
its order and its dependencies are done (forward of stage s after forward of s-1; backward of s after
backward of s+1 and its own forward). A cycle (deadlock) or a missing/extra task makes a schedule
invalid.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from dataclasses import dataclass
from typing import NamedTuple

AF, AB, CF, CB = 0, 1, 2, 3


@dataclass(frozen=True)
class FusedConfig:
    pp0: int
    pp1: int
    m0: int
    m1: int
    f0: int
    f1: int

    def __post_init__(self) -> None:
        if self.pp1 > self.pp0 or self.pp0 % self.pp1:
            raise ValueError("pp1 must divide pp0")

    @property
    def nodes(self) -> int:
        return self.pp0

    @property
    def replicas(self) -> int:
        return self.pp0 // self.pp1

    def durations(self) -> tuple[int, int, int, int]:
        return (self.f0, 2 * self.f0, self.f1, 2 * self.f1)

    def node_of(self, model: int, replica: int, stage: int) -> int:
        if model == 0:
            return stage
        return replica * self.pp1 + self.pp1 - 1 - stage

    def critic_stage(self, node: int) -> int:
        return self.pp1 - 1 - node % self.pp1

    def total_work(self) -> int:
        return self.pp0 * (self.m0 * 3 * self.f0 + self.m1 * 3 * self.f1)

    def node_work(self) -> int:
        return self.m0 * 3 * self.f0 + self.m1 * 3 * self.f1


# The 12 published FlexFusion configurations: (config, seq-1F1B makespan, fused makespan, tight LB).
PUBLISHED: list[tuple[FusedConfig, int, int, int]] = [
    (FusedConfig(8, 4, 32, 16, 5, 4), 813, 708, 708),
    (FusedConfig(8, 4, 16, 8, 5, 4), 477, 372, 372),
    (FusedConfig(8, 4, 8, 4, 5, 4), 309, 225, 225),
    (FusedConfig(8, 8, 32, 32, 5, 2), 819, 702, 702),
    (FusedConfig(8, 8, 16, 16, 5, 2), 483, 366, 366),
    (FusedConfig(8, 8, 8, 8, 5, 2), 315, 225, 225),
    (FusedConfig(16, 8, 64, 32, 2, 2), 708, 618, 618),
    (FusedConfig(16, 8, 32, 16, 2, 2), 420, 330, 330),
    (FusedConfig(16, 8, 16, 8, 2, 2), 276, 186, 186),
    (FusedConfig(16, 16, 64, 64, 2, 1), 711, 613, 606),
    (FusedConfig(16, 16, 32, 32, 2, 1), 423, 318, 318),
    (FusedConfig(16, 16, 16, 16, 2, 1), 279, 186, 186),
]


class Task(NamedTuple):
    model: int
    replica: int  # always 0 for model 0
    mb: int
    stage: int
    backward: bool


class Evaluation(NamedTuple):
    makespan: int
    finish: dict  # Task -> finish time
    peak_memory: int  # max over nodes of the activation count (+1 per forward, -1 per backward)
    node_peaks: list[int]


class InvalidSchedule(ValueError):
    pass


# ---------------------------------------------------------------- explicit schedules


def all_tasks(cfg: FusedConfig) -> list[Task]:
    out = []
    for mb in range(cfg.m0):
        for s in range(cfg.pp0):
            out += [Task(0, 0, mb, s, False), Task(0, 0, mb, s, True)]
    for r in range(cfg.replicas):
        for mb in range(cfg.m1):
            for s in range(cfg.pp1):
                out += [Task(1, r, mb, s, False), Task(1, r, mb, s, True)]
    return out


def _deps(cfg: FusedConfig, t: Task) -> list[Task]:
    n_stages = cfg.pp0 if t.model == 0 else cfg.pp1
    if not t.backward:
        return [t._replace(stage=t.stage - 1)] if t.stage > 0 else []
    deps = [t._replace(backward=False)]
    if t.stage < n_stages - 1:
        deps.append(t._replace(stage=t.stage + 1))
    return deps


def _duration(cfg: FusedConfig, t: Task) -> int:
    f = cfg.f0 if t.model == 0 else cfg.f1
    return 2 * f if t.backward else f


def check_schedule(cfg: FusedConfig, schedule: list[list[Task]]) -> None:
    """Raise :class:`InvalidSchedule` unless every task appears exactly once, on its node, and list
    scheduling finishes (no dependency cycle through the per-node orders)."""
    evaluate_schedule(cfg, schedule)


def evaluate_schedule(cfg: FusedConfig, schedule: list[list[Task]]) -> Evaluation:
    """List-schedule an explicit schedule; raise :class:`InvalidSchedule` if it is not valid."""
    if len(schedule) != cfg.nodes:
        raise InvalidSchedule(f"expected {cfg.nodes} node lists, got {len(schedule)}")
    seen: set[Task] = set()
    for n, order in enumerate(schedule):
        for t in order:
            if cfg.node_of(t.model, t.replica, t.stage) != n:
                raise InvalidSchedule(f"{t} placed on node {n}")
            if t in seen:
                raise InvalidSchedule(f"{t} appears twice")
            seen.add(t)
    expected = set(all_tasks(cfg))
    if seen != expected:
        raise InvalidSchedule(f"{len(expected - seen)} tasks missing, {len(seen - expected)} unknown")
    finish: dict[Task, int] = {}
    ptr = [0] * cfg.nodes
    free = [0] * cfg.nodes
    done, total = 0, len(expected)
    while done < total:
        progress = False
        for n, order in enumerate(schedule):
            i = ptr[n]
            while i < len(order):
                t = order[i]
                deps = _deps(cfg, t)
                if any(d not in finish for d in deps):
                    break
                start = max([free[n]] + [finish[d] for d in deps])
                free[n] = finish[t] = start + _duration(cfg, t)
                i += 1
            if i != ptr[n]:
                done += i - ptr[n]
                ptr[n] = i
                progress = True
        if not progress:
            raise InvalidSchedule(f"deadlock after {done} of {total} tasks")
    peaks = []
    for order in schedule:
        mem = peak = 0
        for t in order:
            mem += -1 if t.backward else 1
            peak = max(peak, mem)
        peaks.append(peak)
    return Evaluation(max(finish.values()), finish, max(peaks), peaks)


def tokens_to_tasks(cfg: FusedConfig, orders: list[list[int]]) -> list[list[Task]]:
    out = []
    for n, order in enumerate(orders):
        cnt = [0, 0, 0, 0]
        r, j = n // cfg.pp1, cfg.critic_stage(n)
        tasks = []
        for tok in order:
            k = cnt[tok]
            cnt[tok] += 1
            if tok < 2:
                tasks.append(Task(0, 0, k, n, tok == AB))
            else:
                tasks.append(Task(1, r, k, j, tok == CB))
        out.append(tasks)
    return out


# ---------------------------------------------------------------- fast token evaluator


def evaluate_tokens(cfg: FusedConfig, orders: list[list[int]]) -> tuple[int, int] | None:
    """(makespan, sum of finish times) of a token schedule, or None if it deadlocks/is malformed."""
    if [len(o) for o in orders] != [2 * (cfg.m0 + cfg.m1)] * cfg.nodes:
        return None
    st = _SimState.empty(cfg, orders)
    return st.run(cfg, [0] * cfg.nodes)


class _SimState:
    """List-scheduling state of a token schedule: finish time per (node, token, micro-batch) and start /
    finish time per (node, position). :meth:`run` resumes from a per-node prefix of fixed tasks."""

    __slots__ = ("orders", "fin", "start", "finish")

    def __init__(self, orders, fin, start, finish):
        self.orders, self.fin, self.start, self.finish = orders, fin, start, finish

    @classmethod
    def empty(cls, cfg: FusedConfig, orders: list[list[int]]) -> _SimState:
        m = (cfg.m0, cfg.m0, cfg.m1, cfg.m1)
        fin = [[[-1] * m[tok] for tok in range(4)] for _ in orders]
        return cls(orders, fin, [[0] * len(o) for o in orders], [[0] * len(o) for o in orders])

    def resumed(self, cfg: FusedConfig, orders: list[list[int]], prefix: list[int]) -> _SimState:
        """A copy whose first prefix[n] tasks on node n keep their times (their order must be unchanged)."""
        m = (cfg.m0, cfg.m0, cfg.m1, cfg.m1)
        fin = []
        for n, p in enumerate(prefix):
            head = orders[n][:p]
            fn = self.fin[n]
            fin.append([fn[tok][: head.count(tok)] + [-1] * (m[tok] - head.count(tok)) for tok in range(4)])
        return _SimState(orders, fin, [list(x) for x in self.start], [list(x) for x in self.finish])

    def run(self, cfg: FusedConfig, prefix: list[int]) -> tuple[int, int] | None:
        P, pp1 = cfg.pp0, cfg.pp1
        dur = cfg.durations()
        m = (cfg.m0, cfg.m0, cfg.m1, cfg.m1)
        orders, fin, starts, finishes = self.orders, self.fin, self.start, self.finish
        ptr = list(prefix)
        cnts = []
        free = []
        for n in range(P):
            head = orders[n][: ptr[n]]
            cnts.append([head.count(0), head.count(1), head.count(2), head.count(3)])
            free.append(finishes[n][ptr[n] - 1] if ptr[n] else 0)
        lens = [len(o) for o in orders]
        total = sum(lens)
        done = sum(ptr)
        while done < total:
            progress = False
            for n in range(P):
                order = orders[n]
                i = ptr[n]
                L = lens[n]
                if i == L:
                    continue
                c = cnts[n]
                fn = fin[n]
                sn = starts[n]
                en = finishes[n]
                t = free[n]
                first_c = n % pp1 == pp1 - 1  # critic stage 0 on this node
                last_c = n % pp1 == 0  # critic last stage on this node
                while i < L:
                    tok = order[i]
                    k = c[tok]
                    if k >= m[tok]:
                        return None
                    if tok == 0:
                        d = fin[n - 1][0][k] if n > 0 else 0
                    elif tok == 1:
                        d = fn[0][k]
                        if d >= 0 and n < P - 1:
                            d2 = fin[n + 1][1][k]
                            d = -1 if d2 < 0 else max(d, d2)
                    elif tok == 2:
                        d = 0 if first_c else fin[n + 1][2][k]
                    else:
                        d = fn[2][k]
                        if d >= 0 and not last_c:
                            d2 = fin[n - 1][3][k]
                            d = -1 if d2 < 0 else max(d, d2)
                    if d < 0:
                        break
                    if d > t:
                        t = d
                    sn[i] = t
                    t += dur[tok]
                    en[i] = t
                    fn[tok][k] = t
                    c[tok] = k + 1
                    i += 1
                if i != ptr[n]:
                    done += i - ptr[n]
                    ptr[n] = i
                    free[n] = t
                    progress = True
            if not progress:
                return None
        return max(free), sum(sum(e) for e in finishes)


def peak_memory_tokens(orders: list[list[int]]) -> tuple[int, list[int]]:
    peaks = []
    for order in orders:
        mem = peak = 0
        for tok in order:
            mem += 1 if tok in (AF, CF) else -1
            peak = max(peak, mem)
        peaks.append(peak)
    return max(peaks), peaks


# ---------------------------------------------------------------- baselines and bound


def one_f_one_b(n_stages: int, stage: int, m: int, fwd: int, bwd: int) -> list[int]:
    """1F1B token order of one stage: warm-up forwards, then forward/backward pairs, then backwards."""
    warm = min(n_stages - stage - 1, m)
    order = [fwd] * warm
    for _ in range(m - warm):
        order += [fwd, bwd]
    return order + [bwd] * warm


def seq_1f1b_orders(cfg: FusedConfig) -> list[list[int]]:
    """Actor 1F1B then critic 1F1B on each node, as one token schedule (no barrier between them)."""
    out = []
    for n in range(cfg.nodes):
        a = one_f_one_b(cfg.pp0, n, cfg.m0, AF, AB)
        c = one_f_one_b(cfg.pp1, cfg.critic_stage(n), cfg.m1, CF, CB)
        out.append(a + c)
    return out


def seq_1f1b_makespan(cfg: FusedConfig) -> int:
    """The reference's "seq 1F1B": actor 1F1B, a barrier, then critic 1F1B, each list-scheduled."""
    only_actor = FusedConfig(cfg.pp0, cfg.pp1, cfg.m0, 0, cfg.f0, cfg.f1)
    only_critic = FusedConfig(cfg.pp0, cfg.pp1, 0, cfg.m1, cfg.f0, cfg.f1)
    a = evaluate_tokens(only_actor, [one_f_one_b(cfg.pp0, n, cfg.m0, AF, AB) for n in range(cfg.nodes)])
    c = evaluate_tokens(
        only_critic,
        [one_f_one_b(cfg.pp1, cfg.critic_stage(n), cfg.m1, CF, CB) for n in range(cfg.nodes)],
    )
    assert a is not None and c is not None
    return a[0] + c[0]


def lower_bound_terms(cfg: FusedConfig) -> dict[str, int]:
    """The four lower-bound terms; the bound is their max (see the module docs)."""
    f0, f1 = cfg.f0, cfg.f1
    crit = max((cfg.m0 + cfg.pp0 - 1) * 3 * f0, (cfg.m1 + cfg.pp1 - 1) * 3 * f1)
    work = cfg.node_work()
    avg = -(-cfg.total_work() // cfg.nodes)
    fill_drain = 0
    for n in range(cfg.nodes):
        j = cfg.critic_stage(n)
        # a node's first task waits for the forwards of the stages before it (of either model), and
        # after its last task (a backward) the backwards of the stages before it still run
        fill = min(n * f0 if cfg.m0 else math.inf, j * f1 if cfg.m1 else math.inf)
        drain = min(n * 2 * f0 if cfg.m0 else math.inf, j * 2 * f1 if cfg.m1 else math.inf)
        fill_drain = max(fill_drain, int(fill + drain) + work)
    return {"critical_path": crit, "average_work": avg, "node_work": work, "fill_drain_work": fill_drain}


def lower_bound(cfg: FusedConfig) -> int:
    return max(lower_bound_terms(cfg).values())


def bubble(cfg: FusedConfig, makespan: int) -> float:
    return 1.0 - cfg.total_work() / (cfg.nodes * makespan)


# ---------------------------------------------------------------- greedy start


def greedy_orders(cfg: FusedConfig, template: str = "") -> list[list[int]]:
    """Repeatedly start the ready task with the earliest start time (ties: large model, then backward),
    skipping a small-model task that would finish after the large model's earliest ready start on
    that node. With `template` "actor" (or "both"), the large model's (both models') tasks on a node
    follow its 1F1B order: only the next task of that order is a candidate."""
    P, pp1 = cfg.pp0, cfg.pp1
    dur = cfg.durations()
    m = (cfg.m0, cfg.m0, cfg.m1, cfg.m1)
    fin = [[[-1] * m[tok] for tok in range(4)] for _ in range(P)]
    cnt = [[0, 0, 0, 0] for _ in range(P)]
    free = [0] * P
    orders: list[list[int]] = [[] for _ in range(P)]
    tmpl = [
        (one_f_one_b(P, n, cfg.m0, AF, AB), one_f_one_b(pp1, cfg.critic_stage(n), cfg.m1, CF, CB))
        for n in range(P)
    ]

    def dep(n: int, tok: int) -> int:
        k = cnt[n][tok]
        if template == "both" or (template == "actor" and tok < 2):
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
            actor = [s for s, tok in starts if tok < 2]
            actor_start = min(actor) if actor else None
            for s, tok in starts:
                if tok >= 2 and actor_start is not None and s + dur[tok] > actor_start:
                    continue
                key = (s, tok >= 2, tok in (AF, CF), n)
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


# ---------------------------------------------------------------- simulated annealing


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
    t0: float = 0.3,
    t_end: float = 0.005,
    start: list[list[int]] | None = None,
) -> SearchResult:
    """Greedy start (the best of the three :func:`greedy_orders` variants, or `start`), then simulated
    annealing over adjacent swaps on one node, for `budget_s` CPU seconds (process time) or until the
    lower bound is reached. The temperature falls geometrically from `t0` to `t_end` over the budget;
    a move is accepted with probability exp((E_cur - E_new)/T). Energy: makespan, then the sum of
    finish times (scaled below 1) as a tie-break. FlexFusion starts at T0 = 10 but runs ~5.5 M
    iterations; from the greedy start and ~10^5-10^6 Python iterations a cooler start reaches more
    bounds (from a poor start such as seq-1F1B, t0 = 10 does better)."""
    rng = random.Random(seed)
    c0 = time.process_time()
    lb = lower_bound(cfg)
    if start is None:
        starts = [greedy_orders(cfg, t) for t in ("", "actor", "both")]
    else:
        starts = [[list(o) for o in start]]
    scored = [(evaluate_tokens(cfg, o), o) for o in starts]
    if any(e is None for e, _ in scored):
        raise InvalidSchedule("the start schedule is invalid")
    ev, greedy = min(scored, key=lambda x: x[0])
    greedy_ms = ev[0]
    cur = [list(o) for o in greedy]
    state = _SimState.empty(cfg, cur)
    ev = state.run(cfg, [0] * cfg.nodes)
    assert ev is not None
    e_cur = _energy(cfg, ev)
    best, best_ev = cur, ev
    it = 0
    P = cfg.nodes
    log_ratio = math.log(t_end / t0)
    temp = t0
    while best_ev[0] > lb:
        if it % 64 == 0:
            frac = (time.process_time() - c0) / budget_s if budget_s > 0 else 1.0
            if frac >= 1.0:
                break
            temp = t0 * math.exp(log_ratio * frac)
        it += 1
        n = rng.randrange(P)
        order = cur[n]
        p = rng.randrange(len(order) - 1)
        a, b = order[p], order[p + 1]
        if a == b:
            continue
        # tasks that started before the swapped pair keep their times: resume from there
        cut = state.start[n][p]
        prefix = [bisect.bisect_left(st, cut) for st in state.start]
        new_orders = list(cur)
        swapped = list(order)
        swapped[p], swapped[p + 1] = b, a
        new_orders[n] = swapped
        new_state = state.resumed(cfg, new_orders, prefix)
        new = new_state.run(cfg, prefix)
        if new is None:
            continue
        e_new = _energy(cfg, new)
        if e_new <= e_cur or rng.random() < math.exp((e_cur - e_new) / temp):
            e_cur, cur, state = e_new, new_orders, new_state
            if new < best_ev:
                best, best_ev = cur, new
    peak, _ = peak_memory_tokens(best)
    return SearchResult(
        orders=[list(o) for o in best],
        makespan=best_ev[0],
        lower_bound=lb,
        greedy_makespan=greedy_ms,
        peak_memory=peak,
        bubble=bubble(cfg, best_ev[0]),
        iterations=it,
        cpu_s=time.process_time() - c0,
    )
