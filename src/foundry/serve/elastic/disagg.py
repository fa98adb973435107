"""Prefill–decode disaggregation (DistServe-style) as an elastic scheduler: the baseline LoongServe
compares against, on the same cluster (engine or simulator). Torch-free.

Prefill instances only prefill (FCFS, whole prompts, up to `batch_max_tokens` per batch); a prefilled
request's KV then moves to a decode instance (a `Migration`: the KV transfer), which decodes every
request it holds in one batch, the ones it just received included. A decode instance takes a request
only with room for its whole output (DistServe's decode side reserves it), so it never has to pause
one; until a decode instance has room, the request waits on its prefill instance, holding its slots
(back-pressure). Every request stays on one instance at a time: nothing is parallel across instances.
"""

from __future__ import annotations

from foundry.serve.elastic.placement import KVRange
from foundry.serve.elastic.plan import ClusterView, DecodeBatch, IterationPlan, Migration, PrefillBatch
from foundry.serve.elastic.scheduler import ElasticScheduler


class DisaggScheduler(ElasticScheduler):
    def __init__(self, prefill_instances: tuple[int, ...], decode_instances: tuple[int, ...], *,
                 batch_max_tokens: int = 16384, max_num_seqs: int = 1024) -> None:
        if not prefill_instances or not decode_instances or set(prefill_instances) & set(decode_instances):
            raise ValueError("DisaggScheduler: need disjoint, non-empty prefill and decode instances, got "
                             f"{prefill_instances} and {decode_instances}")
        self.prefill, self.decode = tuple(prefill_instances), tuple(decode_instances)
        self.batch_max_tokens, self.max_num_seqs = batch_max_tokens, max_num_seqs
        self._reserved: dict[str, int] = {}  # request on a decode instance → slots its output may still take

    def schedule(self, view: ClusterView) -> IterationPlan:
        p = view.placement
        live = set(p) | set(view.busy_requests)
        self._reserved = {r: n for r, n in self._reserved.items() if r in live}
        for r in view.running:
            if r.request_id in self._reserved:
                self._reserved[r.request_id] = max(r.max_tokens - r.num_generated, 0)
        # 1. prefilled requests move to an idle decode instance with room for their whole output
        free = {d: p.free(d) - sum(n for rid, n in self._reserved.items() if p.holders(rid) == (d,))
                for d in self.decode if d in view.idle}
        migrations = []
        for r in sorted(view.running, key=lambda r: (r.arrival, r.request_id)):
            (src,) = p.holders(r.request_id)
            if src not in self.prefill or src not in view.idle:
                continue
            need = r.context_len + max(r.max_tokens - r.num_generated, 0)
            dst = max(free, key=lambda d: (free[d], -d), default=None)
            if dst is None or free[dst] < need:
                break  # FCFS: the oldest waits for room first
            migrations.append(Migration(r.request_id, 0, r.context_len, dst))
            free[dst] -= need
            self._reserved[r.request_id] = max(r.max_tokens - r.num_generated, 0)
        moved = {m.request_id: m.dst for m in migrations}
        # 2. each idle decode instance decodes what it holds, the requests it just received included
        decodes = []
        for d in self.decode:
            if d not in view.idle:
                continue
            mine = tuple(r.request_id for r in view.running
                         if moved.get(r.request_id, p.holders(r.request_id)[0]) == d)
            if mine:
                decodes.append(DecodeBatch(mine, (d,), {rid: d for rid in mine}))
        # 3. each idle prefill instance prefills a FCFS prefix of the queue that fits it
        prefills = []
        queue = list(view.waiting)
        in_system = len(live)
        largest_decode = max(p.capacities[d] for d in self.decode)
        for i in self.prefill:
            if i not in view.idle:
                continue
            leaving = sum(m.stop for m in migrations if p.holders(m.request_id) == (i,))
            room, taken, total = p.free(i) + leaving, [], 0
            while queue and in_system < self.max_num_seqs:
                w = queue[0]
                if w.prompt_len + w.max_tokens > largest_decode:
                    queue.pop(0)  # can never be decoded here: left for the driver to refuse
                    continue
                if total + w.prompt_len > min(room, self.batch_max_tokens):
                    break
                taken.append(queue.pop(0))
                total += w.prompt_len
                in_system += 1
            if taken:
                prefills.append(PrefillBatch(tuple(w.request_id for w in taken), (i,),
                                             {w.request_id: (KVRange(i, 0, w.prompt_len),) for w in taken}))
        return IterationPlan(prefills=tuple(prefills), decodes=tuple(decodes), migrations=tuple(migrations))
