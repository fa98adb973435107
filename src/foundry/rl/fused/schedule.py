"""Schedules of a fused pipeline: tasks, the validity checker, list scheduling, token orders, memory.

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

from typing import NamedTuple

from foundry.rl.fused.config import FusedConfig

AF, AB, CF, CB = 0, 1, 2, 3


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


def check_schedule(cfg: FusedConfig, schedule: list[list[Task]], memory_cap: int | None = None) -> None:
    """Raise :class:`InvalidSchedule` unless every task appears exactly once, on its node, list
    scheduling finishes (no dependency cycle through the per-node orders) and, given `memory_cap`, no
    node ever holds more than `memory_cap` activations (+1 per forward, -1 per backward, both models)."""
    evaluate_schedule(cfg, schedule, memory_cap)


def memory_error(cfg: FusedConfig, node_peaks: list[int], memory_cap: int) -> str | None:
    """The message naming the first node (and the stages it hosts) whose peak exceeds `memory_cap`."""
    for n, peak in enumerate(node_peaks):
        if peak > memory_cap:
            return (f"node {n} (actor stage {n}, critic stage {cfg.critic_stage(n)}) holds {peak} "
                    f"activations, over the memory cap {memory_cap}")
    return None


def evaluate_schedule(
    cfg: FusedConfig, schedule: list[list[Task]], memory_cap: int | None = None
) -> Evaluation:
    """List-schedule an explicit schedule; raise :class:`InvalidSchedule` if it is not valid (see
    :func:`check_schedule`)."""
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
    if memory_cap is not None and (msg := memory_error(cfg, peaks, memory_cap)):
        raise InvalidSchedule(msg)
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

