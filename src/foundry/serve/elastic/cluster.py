"""The elastic cluster's coordinator: requests, placement, the scheduler's plans, and the instances.

One loop over an `InstanceGroup` (Ray processes talking gloo, or threads of this process):

    view = snapshot()                      # waiting and idle running requests, placement, idle instances
    plan = scheduler.schedule(view)        # torch-free (`ElasticScheduler`): the simulator runs the same one
    launch(plan)                           # pauses, migrations, then prefill rings and decode batches
    wait for any batch to end; sample      # each batch ends on its own: the others keep running

The placement record is updated when a batch is launched (its slots are reserved from then on) and
checked against every instance's own pool by `check()`. Admission is against the cluster: a prompt
larger than any one instance's pool is served as long as the cluster holds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from foundry.actors import ActorDied
from foundry.serve.elastic.instance_group import InstanceGroup
from foundry.serve.elastic.multi_master_decode import DecodeWork
from foundry.serve.elastic.placement import KVRange, Placement
from foundry.serve.elastic.plan import (
    ClusterView,
    DecodeBatch,
    IterationPlan,
    PrefillBatch,
    RunningRequest,
    WaitingRequest,
)
from foundry.serve.elastic.ring_prefill import PrefillWork
from foundry.serve.elastic.scheduler import ElasticScheduler
from foundry.serve.elastic.validate import apply_plan, validate_plan
from foundry.serve.sampler import sample
from foundry.serve.sampling_params import SamplingParams


@dataclass
class ElasticRequest:
    request_id: str
    prompt: list[int]
    params: SamplingParams
    arrival: float
    output: list[int] = field(default_factory=list)
    first_token_time: float | None = None
    finish_time: float | None = None
    finish_reason: str | None = None
    prefilled: bool = False  # its KV is in the cluster (reset by a pause)
    generator: torch.Generator = field(default_factory=torch.Generator)

    @property
    def tokens(self) -> list[int]:
        return self.prompt + self.output


@dataclass
class _Batch:
    kind: str  # "prefill" | "decode"
    request_ids: tuple[str, ...]
    instances: tuple[int, ...]
    refs: list[Any]
    started: float


class ElasticCluster:
    def __init__(self, group: InstanceGroup, *, scheduler: ElasticScheduler,
                 eos_token_id: int | None = None, validate: bool = False) -> None:
        self.group = group
        self.model_config = group.model_config
        self.scheduler: ElasticScheduler = scheduler
        self.validate = validate  # check every plan against its view (tests)
        self.eos_token_id = eos_token_id
        self.placement = Placement([group.slots_per_instance] * group.num_instances)
        self.requests: dict[str, ElasticRequest] = {}
        self.finished: dict[str, ElasticRequest] = {}
        self.num_paused = 0
        self.num_restarts = 0
        self._batches: list[_Batch] = []
        self._done: set[int] = set()  # ids of the refs of running batches that have ended
        self._aborting: set[str] = set()  # aborted while in a running batch: dropped when it ends
        self._clock0 = time.monotonic()

    # -- requests ----------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self._clock0

    def add_request(self, request_id: str, prompt: list[int], params: SamplingParams) -> None:
        params.validate()
        if request_id in self.requests or request_id in self.finished:
            raise ValueError(f"request_id: {request_id!r} is already in use")
        if not prompt:
            raise ValueError("prompt: must have at least one token")
        total = len(prompt) + params.max_tokens
        if total > self.model_config.max_position_embeddings:
            raise ValueError(f"prompt: {len(prompt)} tokens + max_tokens {params.max_tokens} exceed the "
                             f"model's {self.model_config.max_position_embeddings} positions")
        if total > sum(self.placement.capacities):
            raise ValueError(f"prompt: {total} tokens exceed the cluster's {sum(self.placement.capacities)} "
                             f"KV slots")
        req = ElasticRequest(request_id, list(prompt), params, self.now())
        if params.seed is not None:
            req.generator.manual_seed(params.seed)
        self.requests[request_id] = req

    def abort_request(self, request_id: str) -> bool:
        """Drop a request and free its KV (at the end of its batch if one is running); False if unknown."""
        if request_id not in self.requests:
            return False
        if any(request_id in b.request_ids for b in self._batches):
            self._aborting.add(request_id)
        else:
            self._free(request_id)
            del self.requests[request_id]
        return True

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    # -- the loop ----------------------------------------------------------------------------------
    def step(self, timeout: float | None = None) -> list[ElasticRequest]:
        """Plan for the idle instances, launch, and wait until some batch ends (or `timeout` seconds
        pass: a server wakes up for new arrivals); returns the requests that got a token (or
        finished). Returns [] at once when nothing can run."""
        view = self.snapshot()
        plan = self.scheduler.schedule(view)
        if self.validate:
            validate_plan(view, plan)
        self._launch(plan)
        if not self._batches:
            if self.requests and plan.is_empty:
                raise RuntimeError("scheduler: requests are waiting but nothing is planned or running "
                                   f"({sorted(self.requests)[:3]}...)")
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (ended := [b for b in self._batches if all(id(r) in self._done for r in b.refs)]):
            pending = [r for b in self._batches for r in b.refs if id(r) not in self._done]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = self.group.wait_any(pending, timeout=left)  # a batch ends when all members do
            if not ready:
                return []
            try:  # a member that died ends its batch now: its peers would wait for it forever
                self.group.get(ready)
            except ActorDied:
                self._recover()
                return []
            self._done.update(map(id, ready))
        out: list[ElasticRequest] = []
        for b in ended:
            self._batches.remove(b)
            self._done.difference_update(map(id, b.refs))
            try:
                out += self._finish_batch(b)
            except ActorDied:
                self._recover()
                return out
        return out

    def _recover(self) -> None:
        """An instance died: restart the group (fresh instances, empty pools) and send every request back
        to waiting with what it has generated (recomputed on its next prefill): nothing accepted is lost."""
        self.group.restart()
        self.num_restarts += 1
        for rid in self._aborting:
            self.requests.pop(rid, None)
        self._aborting.clear()
        self._batches.clear()
        self._done.clear()
        for rid in list(self.placement):
            self.placement.drop(rid)
        for r in self.requests.values():
            r.prefilled = False

    def run(self) -> dict[str, ElasticRequest]:
        """Step until every request has finished; returns them all by id."""
        while self.requests:
            self.step()
        return self.finished

    def snapshot(self) -> ClusterView:
        busy_req = {rid for b in self._batches for rid in b.request_ids}
        busy_inst = {i for b in self._batches for i in b.instances}
        waiting = tuple(WaitingRequest(r.request_id, len(r.tokens), r.arrival,
                                       r.params.max_tokens - len(r.output))
                        for r in self.requests.values() if not r.prefilled and r.request_id not in busy_req)
        running = tuple(RunningRequest(r.request_id, self.placement.length(r.request_id), len(r.output),
                                       r.params.max_tokens, r.arrival)
                        for r in self.requests.values() if r.prefilled and r.request_id not in busy_req)
        idle = frozenset(set(range(self.placement.num_instances)) - busy_inst)
        return ClusterView(self.now(), waiting, running, self.placement, idle, frozenset(busy_req))

    def _launch(self, plan: IterationPlan) -> None:
        applied = apply_plan(self.placement, plan)  # slots are reserved from launch on
        for rid, ranges in applied.dropped.items():  # paused: prefilled again later (prompt + output)
            self.num_paused += 1
            self._free_on(rid, ranges)
            self.requests[rid].prefilled = False
        for m, pieces in applied.moved:
            for piece in pieces:
                if piece.instance != m.dst:  # (the ordered actor queues put these before later batches)
                    self.group.call(piece.instance, "send_kv", m.request_id, piece.start, piece.stop, m.dst)
                    self.group.call(m.dst, "recv_kv", m.request_id, piece.start, piece.stop, piece.instance)
        for p in plan.prefills:
            self._launch_prefill(p)
        for d in plan.decodes:
            self._launch_decode(d, applied.decode_positions)

    def _launch_prefill(self, p: PrefillBatch) -> None:
        work = PrefillWork(p.request_ids, tuple(tuple(self.requests[r].tokens) for r in p.request_ids),
                           p.instances, {r: p.kv_plan[r] for r in p.request_ids})
        refs = [self.group.call(i, "prefill", work) for i in p.instances]
        self._batches.append(_Batch("prefill", p.request_ids, p.instances, refs, self.now()))

    def _launch_decode(self, d: DecodeBatch, positions: dict[str, int]) -> None:
        ids = d.request_ids
        work = DecodeWork(ids, tuple(self.requests[r].output[-1] for r in ids),
                          tuple(positions[r] for r in ids), tuple(d.new_kv[r] for r in ids),
                          tuple(self.placement.holders(r) for r in ids), d.instances)
        refs = [self.group.call(i, "decode", work) for i in d.instances]
        self._batches.append(_Batch("decode", d.request_ids, d.instances, refs, self.now()))

    def _finish_batch(self, b: _Batch) -> list[ElasticRequest]:
        logits: dict[str, torch.Tensor] = {}
        for part in self.group.get(b.refs):
            logits.update(part)
        for rid in self._aborting.intersection(b.request_ids):
            self._aborting.discard(rid)
            self._free(rid)
            del self.requests[rid]
        reqs = [self.requests[r] for r in b.request_ids if r in self.requests]
        if not reqs:
            return []
        tokens, _ = sample(torch.stack([logits[r.request_id] for r in reqs]), [r.params for r in reqs],
                           [r.generator for r in reqs])
        now = self.now()
        for r, t in zip(reqs, tokens, strict=True):
            r.prefilled = True
            r.output.append(t)
            if r.first_token_time is None:
                r.first_token_time = now
            reason = self._stop_reason(r, t)
            if reason is not None:
                r.finish_reason, r.finish_time = reason, now
                self._free(r.request_id)
                self.finished[r.request_id] = self.requests.pop(r.request_id)
                self.scheduler.observe_finished(r.request_id, len(r.output))
        return reqs

    def _stop_reason(self, r: ElasticRequest, token: int) -> str | None:
        if token in r.params.stop_token_ids or (token == self.eos_token_id and not r.params.ignore_eos):
            return "stop"
        if len(r.output) >= r.params.max_tokens:
            return "length"
        return None

    def _free(self, request_id: str) -> None:
        self._free_on(request_id, self.placement.drop(request_id))

    def _free_on(self, request_id: str, ranges: tuple[KVRange, ...]) -> None:
        """Tell the instances that held `ranges` of a request (already dropped from the placement)."""
        for i in sorted({r.instance for r in ranges}):
            self.group.call(i, "free", [request_id])

    # -- checks ------------------------------------------------------------------------------------
    def check(self) -> None:
        """KV conservation: the placement tiles every prefilled request's context exactly, and each
        instance's pool holds exactly the positions the placement gives it (waits for running batches)."""
        for b in self._batches:
            self.group.get(b.refs)
        busy = {rid for b in self._batches for rid in b.request_ids}
        # a running batch has reserved every token it was given; an idle request's last sampled token
        # has no KV yet (it is the next decode's input)
        lengths = {rid: len(r.tokens) - (rid not in busy) for rid, r in self.requests.items()
                   if r.prefilled or rid in busy}
        self.placement.check(lengths)
        held = self.group.get([self.group.call(i, "held") for i in range(self.group.num_instances)])
        for i, h in enumerate(held):
            want = {rid: [p for rg in self.placement.ranges(rid) if rg.instance == i
                          for p in range(rg.start, rg.stop)] for rid in self.placement}
            want = {rid: ps for rid, ps in want.items() if ps}
            if h != want:
                raise AssertionError(f"instance {i} holds {_brief(h)}, the placement says {_brief(want)}")

    def shutdown(self) -> None:
        self.group.shutdown()


def _brief(h: dict[str, list[int]]) -> str:
    return str({k: (len(v), v[:3]) for k, v in h.items()})


