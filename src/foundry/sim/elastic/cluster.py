"""An event-driven elastic cluster: instances with KV capacities, batches on disjoint instance sets,
an elastic scheduler asked what to run whenever a batch ends or a request arrives. Deterministic.

The loop reads like the engine's step, over several instances at once:

    now = the next event (an arrival, or the end of a running batch)
    finish the batches that end at `now`: emit one token per request, free finished requests' KV
    admit the arrivals up to `now`
    plan = scheduler.schedule(view)        # only idle instances, only requests not in a batch
    apply it: paused requests drop their KV and wait again; migrations move KV ranges; each prefill
    batch places its prompts' KV by its migration plan; each decode batch appends one token's KV
    start each batch, ending after its cost-model time

Times (`ESPCostModel`): a prefill on k instances takes T_k(Σl, Σl²); a decode batch lasts as long
as its slowest instance, each instance's share a + b·(KV tokens it holds for the batch) + c·(requests
it holds KV of); a batch whose instances took part in a migration this round starts after it
(tokens · bytes per token / bandwidth, migrations to or from one instance in series).

Request state follows one rule: a prefill computes the KV of every token it is given and emits the
next token; a decode appends the KV of the last emitted token and emits one more. So a request holds
``prompt + generated − 1`` tokens of KV between batches; a paused request re-prefills ``prompt +
generated`` tokens (recompute). Its first prefill's end is its first-token time. Every request is
given its dataset output length as ``max_tokens`` (the benchmark sends it with ``ignore_eos``).
"""

from __future__ import annotations

import bisect
import heapq
import time
from dataclasses import dataclass, field
from typing import Protocol

from foundry.serve.bench.report import RequestRecord
from foundry.serve.bench.workloads import Workload
from foundry.serve.elastic.cost_model import ESPCostModel
from foundry.serve.elastic.placement import Placement
from foundry.serve.elastic.plan import (
    ClusterView,
    DecodeBatch,
    IterationPlan,
    PrefillBatch,
    RunningRequest,
    WaitingRequest,
)
from foundry.serve.elastic.validate import apply_plan


class ElasticScheduler(Protocol):  # (`observe_finished(id, num_generated)` is called too, where defined)
    def schedule(self, view: ClusterView) -> IterationPlan: ...


@dataclass(slots=True)
class _Req:
    id: str
    index: int
    prompt_len: int
    output_len: int
    arrival: float
    num_generated: int = 0
    context_len: int = 0  # tokens with KV in the cluster
    first_token_time: float | None = None
    finish_time: float | None = None


@dataclass(slots=True)
class _Batch:
    end: float
    is_prefill: bool
    request_ids: tuple[str, ...]
    instances: tuple[int, ...]


@dataclass
class ClusterStats:
    num_prefill_batches: int = 0
    num_decode_batches: int = 0
    num_scheduler_calls: int = 0
    num_migrations: int = 0
    migrated_tokens: int = 0
    num_paused: int = 0
    prefill_degree_hist: dict[int, int] = field(default_factory=dict)  # SP degree -> prefill batches
    busy_time: list[float] = field(default_factory=list)  # per instance
    end_time: float = 0.0
    wall_time: float = 0.0


@dataclass
class ClusterResult:
    records: list[RequestRecord]
    stats: ClusterStats


class ElasticCluster:
    """`capacities[i]` KV tokens on instance i; `check=True` runs `Placement.check` against every
    request's expected context length after every event (tests)."""

    def __init__(self, scheduler: ElasticScheduler, cost: ESPCostModel, capacities: list[int], *,
                 max_request_tokens: int | None = None, check: bool = False, validate: bool = False) -> None:
        if not capacities:
            raise ValueError("capacities: need at least one instance")
        self.scheduler = scheduler
        self.cost = cost
        self.capacities = list(capacities)
        # a request whose prompt + output exceeds this is refused on arrival (the KV it could ever get)
        self.max_request_tokens = sum(capacities) if max_request_tokens is None else max_request_tokens
        self.check = check
        self.validate = validate

    def run(self, workload: Workload) -> ClusterResult:
        wall = time.perf_counter()
        self._waiting_changes = 0  # insertions into and removals from the waiting queue
        order = sorted(range(len(workload.requests)), key=lambda i: workload.requests[i].arrival_time)
        reqs = {f"r{i}": _Req(f"r{i}", i, s.prompt_len, s.output_len, s.arrival_time)
                for i, s in enumerate(workload.requests)}
        placement = Placement(self.capacities)
        n_inst = len(self.capacities)
        stats = ClusterStats(busy_time=[0.0] * n_inst)
        waiting: list[tuple[float, int, str]] = []  # (arrival, index, id), in arrival order; paused too
        waiting_view: tuple[WaitingRequest, ...] | None = None  # the view's, while `waiting` is unchanged
        num_waiting_changes = -1
        running: dict[str, _Req] = {}  # prefilled, not in a batch
        busy: set[str] = set()
        idle = set(range(n_inst))
        events: list[tuple[float, int, _Batch]] = []
        refused: set[str] = set()
        observe = getattr(self.scheduler, "observe_finished", None)
        seq = 0
        nxt, now = 0, 0.0
        while True:
            t_arr = workload.requests[order[nxt]].arrival_time if nxt < len(order) else float("inf")
            t_end = events[0][0] if events else float("inf")
            now = min(t_arr, t_end)
            if now == float("inf"):
                break
            while events and events[0][0] <= now:  # batches ending now (in start order on a tie)
                _, _, b = heapq.heappop(events)
                idle.update(b.instances)
                for rid in b.request_ids:
                    r = reqs[rid]
                    busy.discard(rid)
                    r.num_generated += 1
                    if r.first_token_time is None:
                        r.first_token_time = now
                    if r.num_generated >= r.output_len:
                        r.finish_time = now
                        placement.drop(rid)
                        if observe is not None:
                            observe(rid, r.num_generated)
                    else:
                        running[rid] = r
            while nxt < len(order) and workload.requests[order[nxt]].arrival_time <= now:
                r = reqs[f"r{order[nxt]}"]
                nxt += 1
                if r.prompt_len + r.output_len > self.max_request_tokens:
                    refused.add(r.id)
                    continue
                bisect.insort(waiting, (r.arrival, r.index, r.id))
                self._waiting_changes += 1
            if idle and (waiting or running):
                stats.num_scheduler_calls += 1
                if waiting_view is None or num_waiting_changes != self._waiting_changes:
                    # (a waiting request's lengths do not change while it waits)
                    waiting_view = tuple(WaitingRequest(rid, reqs[rid].prompt_len + reqs[rid].num_generated,
                                                        arr, reqs[rid].output_len - reqs[rid].num_generated)
                                         for arr, _, rid in waiting)
                    num_waiting_changes = self._waiting_changes
                view = ClusterView(
                    now,
                    waiting_view,
                    tuple(RunningRequest(r.id, r.context_len, r.num_generated, r.output_len, r.arrival)
                          for r in running.values()),
                    placement, frozenset(idle), frozenset(busy))
                plan = self.scheduler.schedule(view)
                if self.validate:
                    from foundry.serve.elastic.validate import validate_plan

                    validate_plan(view, plan)
                for b in self._apply(plan, now, reqs, placement, waiting, running, busy, idle, stats):
                    heapq.heappush(events, (b.end, seq, b))
                    seq += 1
            if self.check:
                placement.check({rid: r.context_len for rid, r in reqs.items() if rid in placement})
                expected = {rid for rid in running} | busy
                if set(placement) != expected:
                    raise AssertionError(f"placed {sorted(placement)} but holding {sorted(expected)}")
            if not events and nxt >= len(order) and (waiting or running):
                raise RuntimeError(f"{type(self.scheduler).__name__}: scheduled nothing with {len(waiting)} "
                                   f"waiting and {len(running)} running requests and no event to come")
        stats.end_time = max((r.finish_time or 0.0) for r in reqs.values()) if reqs else 0.0
        stats.wall_time = time.perf_counter() - wall
        records = [RequestRecord(r.prompt_len, r.output_len, r.arrival, r.first_token_time, r.finish_time,
                                 r.num_generated, "refused: prompt + output exceed the KV it could get"
                                 if r.id in refused else None)
                   for r in sorted(reqs.values(), key=lambda x: x.index)]
        return ClusterResult(records, stats)

    # ---- applying a plan -------------------------------------------------------------------------
    def _apply(self, plan: IterationPlan, now: float, reqs: dict[str, _Req], placement: Placement,
               waiting: list[tuple[float, int, str]], running: dict[str, _Req], busy: set[str],
               idle: set[int], stats: ClusterStats) -> list[_Batch]:
        applied = apply_plan(placement, plan)
        for rid in applied.dropped:
            r = running.pop(rid)
            r.context_len = 0
            bisect.insort(waiting, (r.arrival, r.index, rid))
            self._waiting_changes += 1
            stats.num_paused += 1
        delay = [0.0] * len(self.capacities)  # migration time each instance spends before its batch
        for m, moved in applied.moved:
            for piece in moved:
                if piece.instance != m.dst:
                    t = self.cost.migration_time(piece.length)
                    delay[piece.instance] += t
                    delay[m.dst] += t
                    stats.migrated_tokens += piece.length
            stats.num_migrations += 1
        started: list[_Batch] = []
        for p in plan.prefills:
            started.append(self._start_prefill(p, now, reqs, placement, waiting, busy, delay, stats))
        for d in plan.decodes:
            started.append(self._start_decode(d, now, reqs, placement, running, busy, delay, stats))
        for b in started:
            idle.difference_update(b.instances)
            for i in b.instances:
                stats.busy_time[i] += b.end - now
        return started

    def _start_prefill(self, p: PrefillBatch, now: float, reqs: dict[str, _Req], placement: Placement,
                       waiting: list[tuple[float, int, str]], busy: set[str], delay: list[float],
                       stats: ClusterStats) -> _Batch:
        sum_len = sum_sq = 0
        for rid in p.request_ids:
            r = reqs[rid]
            waiting.remove((r.arrival, r.index, rid))
            self._waiting_changes += 1
            n = r.prompt_len + r.num_generated  # (its KV reserved by `apply_plan`)
            r.context_len = n
            busy.add(rid)
            sum_len += n
            sum_sq += n * n
        k = len(p.instances)
        stats.num_prefill_batches += 1
        stats.prefill_degree_hist[k] = stats.prefill_degree_hist.get(k, 0) + 1
        start = now + max(delay[i] for i in p.instances)
        return _Batch(start + self.cost.prefill_time(k, sum_len, sum_sq), True, tuple(p.request_ids),
                      tuple(p.instances))

    def _start_decode(self, d: DecodeBatch, now: float, reqs: dict[str, _Req], placement: Placement,
                      running: dict[str, _Req], busy: set[str], delay: list[float],
                      stats: ClusterStats) -> _Batch:
        ctx: dict[int, int] = dict.fromkeys(d.instances, 0)
        num: dict[int, int] = dict.fromkeys(d.instances, 0)
        for rid in d.request_ids:
            r = running.pop(rid)
            r.context_len += 1  # (the new token's KV appended by `apply_plan`)
            busy.add(rid)
            for i, tokens in placement.tokens_by_instance(rid).items():
                ctx[i] = ctx.get(i, 0) + tokens
                num[i] = num.get(i, 0) + 1
        stats.num_decode_batches += 1
        t = max(self.cost.decode_time(num[i], ctx[i]) for i in ctx)
        start = now + max(delay[i] for i in d.instances)
        return _Batch(start + t, False, tuple(d.request_ids), tuple(d.instances))
