"""The discrete-event simulator: the engine's core on a virtual clock, with a cost-model executor.

The engine is `EngineCore` + the model executor; the simulator is the same `EngineCore` (the same
admission, decision check, memory plan, token emission and finish) + `CostModelExecutor`:

    decision = core.schedule(now)                # policy.schedule + the engine's check
    plan, result = core.run(decision, now)       # apply_decision, cost model, policy.update(now + elapsed),
                                                 # advance, tokens, finishes
    now = result.end

A cluster is several instances, each a core with its own policy, block manager, executor and clock,
under a `Dispatcher` (`dispatch.py`) that places each arriving request. Events are arrivals and each
instance's step ends, taken in time order (an arrival first on a tie; instances by index). Requests
that arrive during an instance's step join before its next one (as in the engine, whose step is not
interrupted); an instance with nothing to run waits for the next arrival. One instance schedules
exactly as a lone core. Every request generates exactly its target output length (``ignore_eos``, as the real
benchmark sends it). Deterministic: no randomness and no wall clock inside the loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from foundry.serve.bench.report import BenchResult, RequestRecord, summarize
from foundry.serve.bench.workloads import Workload
from foundry.serve.block_manager import BlockManager
from foundry.serve.core import CoreStats, EngineCore
from foundry.serve.policies.base import Policy
from foundry.serve.sampling_params import SamplingParams
from foundry.serve.sequence import Sequence
from foundry.sim.dispatch import Dispatcher, RoundRobin
from foundry.sim.executor import CostModelExecutor


@dataclass
class SimStats(CoreStats):  # the core's counters (steps, preemptions, swaps, busy time), plus:
    compute_time: float = 0.0  # of the busy time, the cost model's step times
    swap_time: float = 0.0  # and swap traffic (overlapped or not)
    end_time: float = 0.0  # virtual time of the last finish
    in_system_area: float = 0.0  # ∫ (admitted, unfinished requests) dt over steps: Little's L · T
    wall_time: float = 0.0  # real seconds the simulation took
    policy_stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimResult:
    records: list[RequestRecord]
    stats: SimStats  # the cluster's: counters and times summed over instances, end_time the latest
    schedule: list[list[tuple[str, int]]] | None = None  # per step (request id, tokens), if recorded
    instances: list[SimStats] = field(default_factory=list)  # each instance's own
    placement: list[int] = field(default_factory=list)  # per request, the instance it went to (-1: refused)

    def summary(self, info: dict[str, Any] | None = None) -> BenchResult:
        """The real benchmark's report over the simulated requests, plus the simulator's counters (and,
        for a cluster, each instance's counters and the report over its own requests)."""
        sim = _counters(self.stats)
        if len(self.instances) > 1:
            sim["instances"] = []
            for k, st in enumerate(self.instances):
                mine = [r for r, p in zip(self.records, self.placement, strict=True) if p == k]
                part = summarize(mine, {}) if mine else None
                sim["instances"].append({**_counters(st), "num_requests": len(mine),
                                         "mean_e2e_s": part.e2e_s.mean if part else None,
                                         "mean_ttft_s": part.ttft_s.mean if part else None})
        return summarize(self.records, {**(info or {}), "simulator": sim})


def _counters(s: SimStats) -> dict[str, Any]:
    return {"num_steps": s.num_steps, "num_preemptions": s.num_preemptions,
            "num_swapped_out": s.num_swapped_out, "num_swapped_in": s.num_swapped_in,
            "busy_time_s": s.busy_time, "wall_time_s": s.wall_time, "policy_stats": s.policy_stats}


@dataclass
class Instance:
    """One instance of a cluster: what a core is built from."""

    policy: Policy
    block_manager: BlockManager
    executor: CostModelExecutor


class Simulator:
    """Runs one workload through one or several instances on a virtual clock."""

    def __init__(self, instances: list[Instance], dispatcher: Dispatcher | None = None, *,
                 max_model_len: int | None = None, check_invariants: bool = False,
                 record_schedule: bool = False, shared_prefix_len: int = 0) -> None:
        if not instances:
            raise ValueError("instances: need at least one")
        self.instances = instances
        self.dispatcher = dispatcher or RoundRobin()
        self.max_model_len = max_model_len
        self.check_invariants = check_invariants
        self.record_schedule = record_schedule
        # prompts are lengths here; for prefix caching, the first `shared_prefix_len` tokens of every
        # prompt are the same and the rest are the request's own (token identity is all a cache reads)
        self.shared_prefix_len = shared_prefix_len

    def run(self, workload: Workload, request_ids: list[str] | None = None) -> SimResult:
        specs = sorted(enumerate(workload.requests), key=lambda x: x[1].arrival_time)
        ids = request_ids or [f"r{i}" for i in range(len(workload))]
        records = [RequestRecord(s.prompt_len, s.output_len, s.arrival_time) for s in workload.requests]
        placement = [-1] * len(records)
        by_id = {ids[i]: records[i] for i in range(len(records))}

        def on_finish(seq: Sequence) -> None:  # (the record is filled once, when the request finishes)
            rec = by_id[seq.request_id]
            rec.first_token_time, rec.finish_time = seq.first_token_time, seq.finish_time
            rec.num_output_tokens = seq.num_output_tokens

        schedule: list[list[tuple[str, int]]] | None = [] if self.record_schedule else None
        cores = [EngineCore(x.policy, x.block_manager, x.executor, max_num_seqs=x.policy.max_num_seqs,
                            max_num_batched_tokens=x.policy.max_num_batched_tokens,
                            max_model_len=self.max_model_len, on_finish=on_finish,
                            check_invariants=self.check_invariants) for x in self.instances]
        num, dispatcher = len(cores), self.dispatcher
        nows, areas = [0.0] * num, [0.0] * num  # each instance's clock and ∫ unfinished dt
        wall = time.perf_counter()
        nxt, n = 0, len(specs)
        while True:
            k, now = -1, math.inf  # the instance whose step comes next: the earliest clock with work
            for j in range(num):
                if cores[j].requests and nows[j] < now:
                    k, now = j, nows[j]
            if nxt < n and specs[nxt][1].arrival_time <= now:  # an arrival first: it joins before that step
                i, spec = specs[nxt]
                nxt += 1
                params = SamplingParams(max_tokens=spec.output_len, temperature=0.0, ignore_eos=True)
                shared = min(self.shared_prefix_len, spec.prompt_len)
                prompt = list(range(1, shared + 1)) + [-1 - i] * (spec.prompt_len - shared)
                seq = Sequence(ids[i], prompt, params, spec.arrival_time)
                j = dispatcher.choose(seq, cores) if num > 1 else 0
                if not cores[j].requests:  # an idle instance's clock jumps to the arrival
                    nows[j] = max(nows[j], spec.arrival_time)
                try:  # the engine's own checks, so a request is refused here exactly when there
                    params.validate()
                    cores[j].add(seq, spec.arrival_time)
                    placement[i] = j
                except ValueError as e:
                    records[i].error = f"ValueError: {e}"
                continue
            if k < 0:
                break  # no arrival to come and no work left
            core = cores[k]
            core.begin_step()
            decision = core.schedule(now)
            if decision.is_empty:  # on a virtual clock an empty decision is no step: wait for an arrival
                if nxt >= n:
                    raise RuntimeError(f"{type(core.policy).__name__}: scheduled nothing with "
                                       f"{len(core.requests)} requests left and no arrival to come")
                nows[k] = max(now, specs[nxt][1].arrival_time)
                continue
            num_live = len(core.requests)
            plan, result = core.run(decision, now)
            areas[k] += num_live * result.elapsed
            if schedule is not None:
                schedule.append([(it.seq.request_id, it.num_tokens) for it in decision.scheduled])
            nows[k] = result.end
            core.end_step(decision, plan, result)
        wall = time.perf_counter() - wall
        per = [SimStats(**asdict(c.stats), compute_time=x.executor.compute_time,
                        swap_time=x.executor.swap_time, end_time=t, in_system_area=a, wall_time=wall,
                        policy_stats=x.policy.stats())
               for c, x, t, a in zip(cores, self.instances, nows, areas, strict=True)]
        total = per[0] if num == 1 else SimStats(
            **{f.name: sum(getattr(s, f.name) for s in per) for f in fields(CoreStats)},
            compute_time=sum(s.compute_time for s in per), swap_time=sum(s.swap_time for s in per),
            end_time=max(nows), in_system_area=sum(areas), wall_time=wall)
        return SimResult(records, total, schedule, per, placement)
