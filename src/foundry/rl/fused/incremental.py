"""Incremental evaluation of a token schedule under adjacent swaps: the schedule as a DAG.

With the per-node orders fixed, list scheduling is a longest-path computation on a DAG whose edges are
the pipeline dependencies (static) and each node's order (one edge per consecutive pair). Swapping two
adjacent *different* tokens on a node keeps every task's micro-batch (the k-th AF stays the k-th AF), so
only three order edges change. After a swap only descendants of the swapped pair can move, so times are
re-propagated from the pair in increasing order of their current start (a topological order of the new
graph apart from the pair itself, which is handled first), stopping wherever a start does not change.

A swap of a before b creates a cycle iff b is reachable from a by a path other than their order edge;
every task on such a path starts in [finish(a), start(b)), so a depth-first search pruned by start time
is short, and empty when b starts as soon as a finishes. Rejected moves are undone from a change log.
"""

from __future__ import annotations

import heapq

from foundry.rl.fused.config import FusedConfig
from foundry.rl.fused.schedule import AB, AF, CB, CF


class IncrementalSchedule:
    """A valid token schedule with its task start times and tails, makespan and sum of finish times,
    updated in place by :meth:`swap`, then kept by :meth:`commit` or rolled back by :meth:`undo`. Tasks
    are ints: ``base[node][token] + micro-batch``; ``order[node]`` lists them, ``pos[task]`` is the
    index in it."""

    def __init__(self, cfg: FusedConfig, orders: list[list[int]]) -> None:
        P, pp1 = cfg.pp0, cfg.pp1
        m = (cfg.m0, cfg.m0, cfg.m1, cfg.m1)
        durs = cfg.durations()
        # task id of (node, token, micro-batch)
        base = []
        nid = 0
        for _ in range(P):
            row = []
            for tok in range(4):
                row.append(nid)
                nid += m[tok]
            base.append(row)
        self.cfg = cfg
        self.n_tasks = nid
        self.dur = [0] * nid
        self.node = [0] * nid
        self.tok = [0] * nid
        deps: list[tuple[int, ...]] = [()] * nid
        for n in range(P):
            first_c = n % pp1 == pp1 - 1  # critic stage 0 on this node
            last_c = n % pp1 == 0  # critic's last stage on this node
            for tok in range(4):
                for k in range(m[tok]):
                    t = base[n][tok] + k
                    self.dur[t], self.node[t], self.tok[t] = durs[tok], n, tok
                    if tok == AF:
                        d = (base[n - 1][AF] + k,) if n > 0 else ()
                    elif tok == AB:
                        d = (base[n][AF] + k,) + ((base[n + 1][AB] + k,) if n < P - 1 else ())
                    elif tok == CF:
                        d = () if first_c else (base[n + 1][CF] + k,)
                    else:
                        d = (base[n][CF] + k,) + (() if last_c else (base[n - 1][CB] + k,))
                    deps[t] = d
        succ: list[list[int]] = [[] for _ in range(nid)]
        for t, d in enumerate(deps):
            for u in d:
                succ[u].append(t)
        self.deps = deps
        self.dsucc = [tuple(s) for s in succ]
        self.base = base
        # per node: the order as task ids, and each task's position
        self.order: list[list[int]] = []
        self.pos = [0] * nid
        for n, toks in enumerate(orders):
            cnt = [0, 0, 0, 0]
            ids = []
            for tok in toks:
                ids.append(base[n][tok] + cnt[tok])
                cnt[tok] += 1
            if cnt != list(m):
                raise ValueError(f"node {n}: token counts {cnt}, expected {list(m)}")
            for i, t in enumerate(ids):
                self.pos[t] = i
            self.order.append(ids)
        self.start = [0] * nid
        if not self._full():
            raise ValueError("the schedule deadlocks")
        self.total_start = sum(self.start)
        self.tail = [0] * nid  # longest path from a task's start to the end (its duration included)
        self._full_tails()
        self._log: list[tuple[int, int]] = []  # (task, start before the last swap) for undo
        self._last_swap: tuple[int, int] | None = None
        self._delta = 0  # the last swap's change of total_start

    def _full(self) -> bool:
        """Compute every start time from scratch (Kahn's algorithm); False on a cycle."""
        nid = self.n_tasks
        indeg = [len(d) for d in self.deps]
        for o in self.order:
            for t in o[1:]:
                indeg[t] += 1
        start, dur, pos, order, node = self.start, self.dur, self.pos, self.order, self.node
        for t in range(nid):
            start[t] = 0
        stack = [t for t in range(nid) if indeg[t] == 0]
        seen = 0
        while stack:
            t = stack.pop()
            seen += 1
            f = start[t] + dur[t]
            o = order[node[t]]
            nxt = list(self.dsucc[t])
            if pos[t] + 1 < len(o):
                nxt.append(o[pos[t] + 1])
            for u in nxt:
                if f > start[u]:
                    start[u] = f
                indeg[u] -= 1
                if indeg[u] == 0:
                    stack.append(u)
        return seen == nid

    def _full_tails(self) -> None:
        start, dur, pos, order, node, dsucc, tail = (
            self.start, self.dur, self.pos, self.order, self.node, self.dsucc, self.tail,
        )
        for t in sorted(range(self.n_tasks), key=start.__getitem__, reverse=True):
            q = 0
            for u in dsucc[t]:
                if tail[u] > q:
                    q = tail[u]
            o = order[node[t]]
            if pos[t] + 1 < len(o) and tail[o[pos[t] + 1]] > q:
                q = tail[o[pos[t] + 1]]
            tail[t] = q + dur[t]

    # ------------------------------------------------------------ queries

    def makespan(self) -> int:
        start, dur = self.start, self.dur
        return max(start[o[-1]] + dur[o[-1]] for o in self.order)

    def sum_finish(self) -> int:
        return self.total_start + sum(self.dur)

    def tokens(self) -> list[list[int]]:
        tok = self.tok
        return [[tok[t] for t in o] for o in self.order]

    def creates_cycle(self, n: int, p: int) -> bool:
        """Whether swapping positions p, p+1 on node n would deadlock."""
        o = self.order[n]
        a, b = o[p], o[p + 1]
        if a in self.deps[b]:
            return True
        start, dur = self.start, self.dur
        sb = start[b]
        if start[a] + dur[a] >= sb:
            return False  # any other path a -> b would need a task inside [finish(a), start(b))
        order, pos, node, dsucc = self.order, self.pos, self.node, self.dsucc
        stack = [u for u in dsucc[a] if start[u] < sb]
        seen = set(stack)
        while stack:
            x = stack.pop()
            ox = order[node[x]]
            nxt = list(dsucc[x])
            if pos[x] + 1 < len(ox):
                nxt.append(ox[pos[x] + 1])
            for u in nxt:
                if u == b:
                    return True
                if u not in seen and start[u] < sb:
                    seen.add(u)
                    stack.append(u)
        return False

    # ------------------------------------------------------------ moves

    def swap(self, n: int, p: int, limit: int | None = None) -> bool:
        """Swap positions p, p+1 on node n (two different tokens) and re-propagate start times. False,
        with nothing changed, if the swap would deadlock or (given `limit`) the new makespan would
        exceed `limit`: a task's new finish plus its tail to the end proves that early. After a True,
        call :meth:`commit` to keep the swap (it updates the tails) or :meth:`undo` to revert it."""
        if self.creates_cycle(n, p):
            return False
        o = self.order[n]
        a, b = o[p], o[p + 1]
        o[p], o[p + 1] = b, a
        pos, start, dur, deps, dsucc, order, node, tail = (
            self.pos, self.start, self.dur, self.deps, self.dsucc, self.order, self.node, self.tail,
        )
        pos[a], pos[b] = p + 1, p
        self._last_swap = (n, p)
        log: list[tuple[int, int]] = []
        self._log = log
        delta = 0
        # b first (its new order predecessor is a's old one), then a (after b)
        s = start[o[p - 1]] + dur[o[p - 1]] if p > 0 else 0
        for u in deps[b]:
            f = start[u] + dur[u]
            if f > s:
                s = f
        log.append((b, start[b]))
        delta += s - start[b]
        start[b] = s
        s += dur[b]
        for u in deps[a]:
            f = start[u] + dur[u]
            if f > s:
                s = f
        log.append((a, start[a]))
        delta += s - start[a]
        start[a] = s
        if limit is None:
            limit = 1 << 60
        heap: list[tuple[int, int]] = []
        queued = set()
        for x in (b, a):
            for u in dsucc[x]:
                if u not in queued:
                    queued.add(u)
                    heap.append((start[u], u))
        if p + 2 < len(o):
            u = o[p + 2]
            queued.add(u)
            heap.append((start[u], u))
        if s + dur[a] > limit:
            self._revert()
            return False
        heapq.heapify(heap)
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            _, t = pop(heap)
            queued.discard(t)
            on = order[node[t]]
            i = pos[t]
            s = start[on[i - 1]] + dur[on[i - 1]] if i > 0 else 0
            for u in deps[t]:
                f = start[u] + dur[u]
                if f > s:
                    s = f
            old = start[t]
            if s == old:
                continue
            log.append((t, old))
            delta += s - old
            start[t] = s
            # t's tail is still a valid lower bound on the new makespan from t (see the module docs)
            if s + tail[t] > limit:
                self._revert()
                return False
            for u in dsucc[t]:
                if u not in queued:
                    queued.add(u)
                    push(heap, (start[u], u))
            if i + 1 < len(on):
                u = on[i + 1]
                if u not in queued:
                    queued.add(u)
                    push(heap, (start[u], u))
        self.total_start += delta
        self._delta = delta
        return True

    def _revert(self) -> None:
        n, p = self._last_swap
        start = self.start
        for t, old in reversed(self._log):
            start[t] = old
        o = self.order[n]
        a, b = o[p], o[p + 1]
        o[p], o[p + 1] = b, a
        self.pos[a], self.pos[b] = p + 1, p
        self._last_swap = None
        self._log = []

    def undo(self) -> None:
        """Revert the last successful (uncommitted) :meth:`swap`."""
        assert self._last_swap is not None, "nothing to undo"
        self.total_start -= self._delta
        self._revert()

    def commit(self) -> None:
        """Keep the last successful :meth:`swap`: update the tails of the swapped pair's ancestors, in
        decreasing start order (a reverse topological order of the new graph), stopping where a tail
        does not change."""
        assert self._last_swap is not None, "nothing to commit"
        n, p = self._last_swap
        self._last_swap = None
        self._log = []
        start, dur, deps, dsucc, order, node, tail, pos = (
            self.start, self.dur, self.deps, self.dsucc, self.order, self.node, self.tail, self.pos,
        )
        o = order[n]
        heap = [(-start[o[p + 1]], o[p + 1]), (-start[o[p]], o[p])]
        queued = {o[p], o[p + 1]}
        pop, push = heapq.heappop, heapq.heappush
        forced = {o[p], o[p + 1]}  # the swapped pair's edges changed: always recompute and go on
        while heap:
            _, t = pop(heap)
            queued.discard(t)
            q = 0
            for u in dsucc[t]:
                if tail[u] > q:
                    q = tail[u]
            on = order[node[t]]
            i = pos[t]
            if i + 1 < len(on) and tail[on[i + 1]] > q:
                q = tail[on[i + 1]]
            q += dur[t]
            if q == tail[t] and t not in forced:
                continue
            tail[t] = q
            for u in deps[t]:
                if u not in queued:
                    queued.add(u)
                    push(heap, (-start[u], u))
            if i > 0:
                u = on[i - 1]
                if u not in queued:
                    queued.add(u)
                    push(heap, (-start[u], u))
