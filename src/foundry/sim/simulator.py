"""The discrete-event simulator: the engine's core on a virtual clock, with a cost-model executor.

The engine is `EngineCore` + the model executor; the simulator is the same `EngineCore` (the same
admission, decision check, memory plan, token emission and finish) + `CostModelExecutor`:

    decision = core.schedule(now)                # policy.schedule + the engine's check
    plan, result = core.run(decision, now)       # apply_decision, cost model, policy.update(now + elapsed),
                                                 # advance, tokens, finishes
    now = result.end

Events are arrivals and step ends. Requests that arrive during a step join before the next one (as
in the engine, whose step is not interrupted); when nothing can run the clock jumps to the next
arrival. Every request generates exactly its target output length (``ignore_eos``, as the real
benchmark sends it). Deterministic: no randomness and no wall clock inside the loop.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from foundry.serve.bench.report import BenchResult, RequestRecord, summarize
from foundry.serve.bench.workloads import Workload
from foundry.serve.block_manager import BlockManager
from foundry.serve.core import CoreStats, EngineCore
from foundry.serve.policies.base import Policy
from foundry.serve.sampling_params import SamplingParams
from foundry.serve.sequence import Sequence
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
    stats: SimStats
    schedule: list[list[tuple[str, int]]] | None = None  # per step (request id, tokens), if recorded

    def summary(self, info: dict[str, Any] | None = None) -> BenchResult:
        """The real benchmark's report over the simulated requests, plus the simulator's counters."""
        s = self.stats
        sim = {"num_steps": s.num_steps, "num_preemptions": s.num_preemptions,
               "num_swapped_out": s.num_swapped_out, "num_swapped_in": s.num_swapped_in,
               "busy_time_s": s.busy_time, "wall_time_s": s.wall_time, "policy_stats": s.policy_stats}
        return summarize(self.records, {**(info or {}), "simulator": sim})


class Simulator:
    """Runs one workload through `policy` + `block_manager` + `executor` on a virtual clock."""

    def __init__(self, policy: Policy, block_manager: BlockManager, executor: CostModelExecutor, *,
                 max_model_len: int | None = None, check_invariants: bool = False,
                 record_schedule: bool = False) -> None:
        self.policy = policy
        self.block_manager = block_manager
        self.executor = executor
        self.max_model_len = max_model_len
        self.check_invariants = check_invariants
        self.record_schedule = record_schedule

    def run(self, workload: Workload, request_ids: list[str] | None = None) -> SimResult:
        specs = sorted(enumerate(workload.requests), key=lambda x: x[1].arrival_time)
        ids = request_ids or [f"r{i}" for i in range(len(workload))]
        records = [RequestRecord(s.prompt_len, s.output_len, s.arrival_time) for s in workload.requests]
        by_id = {ids[i]: records[i] for i in range(len(records))}

        def on_finish(seq: Sequence) -> None:  # (the record is filled once, when the request finishes)
            rec = by_id[seq.request_id]
            rec.first_token_time, rec.finish_time = seq.first_token_time, seq.finish_time
            rec.num_output_tokens = seq.num_output_tokens

        schedule: list[list[tuple[str, int]]] | None = [] if self.record_schedule else None
        policy = self.policy
        core = EngineCore(policy, self.block_manager, self.executor, max_num_seqs=policy.max_num_seqs,
                          max_num_batched_tokens=policy.max_num_batched_tokens,
                          max_model_len=self.max_model_len, on_finish=on_finish,
                          check_invariants=self.check_invariants)
        live = core.requests
        wall = time.perf_counter()
        now, area, nxt, n = 0.0, 0.0, 0, len(specs)
        while nxt < n or live:
            while nxt < n and specs[nxt][1].arrival_time <= now:  # arrivals up to now join
                i, spec = specs[nxt]
                params = SamplingParams(max_tokens=spec.output_len, temperature=0.0, ignore_eos=True)
                seq = Sequence(ids[i], [0] * spec.prompt_len, params, spec.arrival_time)
                try:  # the engine's own checks, so a request is refused here exactly when there
                    params.validate()
                    core.add(seq, spec.arrival_time)
                except ValueError as e:
                    records[i].error = f"ValueError: {e}"
                nxt += 1
            if not live:
                if nxt < n:
                    now = specs[nxt][1].arrival_time
                continue
            decision = core.schedule(now)
            if decision.is_empty:  # on a virtual clock an empty decision is no step: wait for an arrival
                if nxt >= n:
                    raise RuntimeError(f"{type(policy).__name__}: scheduled nothing with {len(live)} "
                                       "requests left and no arrival to come")
                now = max(now, specs[nxt][1].arrival_time)
                continue
            num_live = len(live)
            _, result = core.run(decision, now)
            area += num_live * result.elapsed
            if schedule is not None:
                schedule.append([(it.seq.request_id, it.num_tokens) for it in decision.scheduled])
            now = result.end
        stats = SimStats(**asdict(core.stats), compute_time=self.executor.compute_time,
                         swap_time=self.executor.swap_time, end_time=now, in_system_area=area,
                         wall_time=time.perf_counter() - wall, policy_stats=policy.stats())
        return SimResult(records, stats, schedule)
