"""The static sequence-parallel baseline (LoongServe's "fixed SP" ablation): fixed groups of instances,
each request on one group for its whole life. Torch-free; the engine and the simulator run the same
object as they run `LoongServeScheduler`."""

from __future__ import annotations

import math

from foundry.serve.elastic.cost_model import ESPCostModel
from foundry.serve.elastic.placement import KVRange, Placement
from foundry.serve.elastic.plan import ClusterView, DecodeBatch, IterationPlan, PrefillBatch, WaitingRequest
from foundry.serve.elastic.scheduler import ElasticScheduler, _assumed_left, _free, _worst_case_fits


class StaticSPScheduler(ElasticScheduler):
    """Fixed sequence parallelism: instances split into groups of ``group_size`` (0..g−1, g..2g−1,
    …; leftover instances unused); a request prefills and decodes on one group for its whole life.
    Per group, FCFS continuous batching in LoongServe's fixed-SP style: an idle group with nothing
    to decode, or after ``max_wait_tokens`` decode iterations, prefills a FCFS prefix of the queue
    (worst-case memory admission against the group, ≤ ``batch_max_tokens``); otherwise it decodes
    all its requests, pausing the newest when its slots run out. A prompt's KV is spread evenly
    over the group (as striping does); each new token goes to the member with the most free slots.
    """

    def __init__(self, cost: ESPCostModel, group_size: int, *, max_wait_tokens: int = 10,
                 batch_max_tokens: int = 500_000, max_num_seqs: int = 1024,
                 admission_max_new_tokens: int | None = None) -> None:
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.cost = cost
        self.group_size = group_size
        self.max_wait_tokens = max_wait_tokens
        self.batch_max_tokens = batch_max_tokens
        self.max_num_seqs = max_num_seqs
        self.admission_max_new_tokens = admission_max_new_tokens
        self._gen: dict[str, int] = {}
        self._since_prefill: dict[int, int] = {}  # group index → decode iterations since its prefill
        self._left: dict[str, int] = {}

    def groups(self, num_instances: int) -> list[tuple[int, ...]]:
        g = self.group_size
        return [tuple(range(n * g, (n + 1) * g)) for n in range(num_instances // g)]

    def schedule(self, view: ClusterView) -> IterationPlan:
        p = view.placement  # read-only: pauses work on a copy
        copied = False
        groups = self.groups(p.num_instances)
        if not groups:
            raise ValueError(f"{p.num_instances} instances cannot form a group of {self.group_size}")
        for r in view.running:
            self._left[r.request_id] = max(r.max_tokens - r.num_generated, 0)
            self._gen[r.request_id] = r.num_generated
        live = set(p) | set(view.busy_requests)
        self._left = {r: n for r, n in self._left.items() if r in live}
        self._gen = {r: n for r, n in self._gen.items() if r in live}
        group_of = {rid: p.holders(rid)[0] // self.group_size for rid in p}
        running = {r.request_id: r for r in view.running}
        queue = list(view.waiting)
        prefills: list[PrefillBatch] = []
        decodes: list[DecodeBatch] = []
        paused: list[str] = []
        idle_groups = [n for n, g in enumerate(groups) if set(g) <= view.idle]
        idle_groups.sort(key=lambda n: (-_free(p, groups[n]), n))
        num_in_system = len(set(p) | set(view.busy_requests))
        for n in idle_groups:
            g = groups[n]
            mine = [r for r in running if group_of.get(r) == n]
            if queue and (not mine or self._since_prefill.get(n, 0) >= self.max_wait_tokens):
                taken = self._admit(queue, p, g, group_of, n, num_in_system)
                if taken:
                    num_in_system += len(taken)
                    queue = queue[len(taken):]
                    prefills.append(self._prefill(taken, g, p))
                    self._since_prefill[n] = 0
                    continue
            if not mine:
                continue
            mine.sort(key=lambda r: (running[r].arrival, r))
            while mine and _free(p, g) < len(mine):
                rid = mine.pop()  # the newest
                if not copied:
                    p, copied = p.copy(), True
                p.drop(rid)
                paused.append(rid)
            if mine:
                left = {i: p.free(i) for i in g}
                new_kv = {}
                for rid in mine:
                    i = max(g, key=lambda i: (left[i], -i))
                    new_kv[rid] = i
                    left[i] -= 1
                decodes.append(DecodeBatch(tuple(mine), g, new_kv))
                self._since_prefill[n] = self._since_prefill.get(n, 0) + 1
        return IterationPlan(prefills=tuple(prefills), decodes=tuple(decodes), paused=tuple(paused))

    def _admit(self, queue: list[WaitingRequest], p: Placement, g: tuple[int, ...], group_of: dict[str, int],
               n: int, num_in_system: int) -> list[WaitingRequest]:
        assume = self.admission_max_new_tokens
        entries = [(p.length(r), _assumed_left(self._left.get(r, 0), self._gen.get(r, 0), assume))
                   for r, m in group_of.items() if m == n]
        capacity = sum(p.capacities[i] for i in g)
        free = _free(p, g)
        taken: list[WaitingRequest] = []
        total = 0
        for w in queue:  # strict FCFS: stop at the first request that does not fit
            entries.append((w.prompt_len, _assumed_left(w.max_tokens, 0, assume)))
            if (total + w.prompt_len > min(free, self.batch_max_tokens)
                    or num_in_system + len(taken) + 1 > self.max_num_seqs
                    or not _worst_case_fits(entries, capacity)):
                break
            taken.append(w)
            total += w.prompt_len
        return taken

    def _prefill(self, taken: list[WaitingRequest], g: tuple[int, ...], p: Placement) -> PrefillBatch:
        left = {i: p.free(i) for i in g}
        kv: dict[str, tuple[KVRange, ...]] = {}
        for w in taken:
            ranges, pos = [], 0
            order = sorted(g, key=lambda i: (left[i], i))  # the fullest first take what they can
            for k, i in enumerate(order):
                take = min(left[i], math.ceil((w.prompt_len - pos) / (len(order) - k)))
                if take > 0:
                    ranges.append(KVRange(i, pos, pos + take))
                    left[i] -= take
                    pos += take
            kv[w.request_id] = tuple(ranges)
        return PrefillBatch(tuple(w.request_id for w in taken), g, kv)
