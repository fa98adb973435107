"""The discrete-event simulator: the engine's policy and block manager on a virtual clock.

The loop is the engine's `step()` with the model runner replaced by a cost-model executor:

    decision = policy.schedule(now, block_manager)     # the same policy object as the engine's
    plan = apply_decision(decision, block_manager)     # the same memory plan and block manager
    elapsed = executor.execute(decision, plan)         # a cost model instead of a forward pass
    policy.update(decision, now + elapsed, elapsed)    # virtual time where the engine passes wall time
    advance(decision); emit tokens; finish requests

Events are arrivals and step ends. Requests that arrive during a step join before the next one (as
in the engine, whose step is not interrupted); when nothing can run the clock jumps to the next
arrival. Every request generates exactly its target output length (``ignore_eos``, as the real
benchmark sends it). Deterministic: no randomness and no wall clock inside the loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from foundry.serve.bench.report import BenchResult, RequestRecord, summarize
from foundry.serve.bench.workloads import Workload
from foundry.serve.block_manager import BlockManager
from foundry.serve.memory_plan import advance, apply_decision
from foundry.serve.policies.base import Policy
from foundry.serve.sampling_params import SamplingParams
from foundry.serve.sequence import KVLocation, Sequence
from foundry.sim.executor import CostModelExecutor


@dataclass
class SimStats:
    num_steps: int = 0
    num_preemptions: int = 0
    num_swapped_out: int = 0
    num_swapped_in: int = 0
    num_swapped_blocks: int = 0  # blocks moved over the host link, both ways
    busy_time: float = 0.0  # virtual seconds spent in steps
    compute_time: float = 0.0  # of which the cost model's step times
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
        stats = SimStats()
        schedule: list[list[tuple[str, int]]] | None = [] if self.record_schedule else None
        live: dict[str, tuple[Sequence, RequestRecord]] = {}
        policy, memory, executor, max_len = self.policy, self.block_manager, self.executor, self.max_model_len
        wall = time.perf_counter()
        now, nxt, n = 0.0, 0, len(specs)
        while nxt < n or live:
            while nxt < n and specs[nxt][1].arrival_time <= now:  # arrivals up to now join
                i, spec = specs[nxt]
                self._admit(ids[i], spec.prompt_len, spec.output_len, spec.arrival_time, records[i], live)
                nxt += 1
            if not live:
                if nxt < n:
                    now = specs[nxt][1].arrival_time
                continue
            # ---- one step, as LLMEngine.step() ----
            decision = policy.schedule(now, memory)
            if decision.is_empty:
                if nxt >= n:
                    raise RuntimeError(f"{type(policy).__name__}: scheduled nothing with {len(live)} "
                                       "requests left and no arrival to come")
                now = max(now, specs[nxt][1].arrival_time)  # idle until the next arrival
                continue
            self._check(decision, live)
            plan = apply_decision(decision, memory)
            elapsed = executor.execute(decision, plan)
            end = now + elapsed
            policy.update(decision, end, elapsed)
            advance(decision)
            stats.in_system_area += len(live) * elapsed
            if schedule is not None:
                schedule.append([(it.seq.request_id, it.num_tokens) for it in decision.scheduled])
            for item in decision.scheduled:  # (inlined: this loop runs once per generated token)
                seq = item.seq
                out = seq.output_token_ids
                if seq.num_computed_tokens == len(seq.prompt_token_ids) + len(out):  # caught up: a token
                    out.append(0)
                    if seq.first_token_time is None:  # (the record is looked up only when it changes)
                        seq.first_token_time = live[seq.request_id][1].first_token_time = end
                    if len(out) >= seq.params.max_tokens or (max_len is not None
                                                             and seq.num_tokens >= max_len):
                        self._finish(seq, live[seq.request_id][1], end, live)
            stats.num_steps += 1
            stats.busy_time += elapsed
            if plan.num_preempted or plan.num_swapped_in:
                stats.num_preemptions += plan.num_preempted
                stats.num_swapped_out += plan.num_swapped_out
                stats.num_swapped_in += plan.num_swapped_in
                stats.num_swapped_blocks += len(plan.swap_out) + len(plan.swap_in)
            if self.check_invariants:
                memory.check_invariants()
            now = end
        stats.end_time = now
        stats.compute_time, stats.swap_time = executor.compute_time, executor.swap_time
        stats.wall_time = time.perf_counter() - wall
        stats.policy_stats = policy.stats()
        return SimResult(records, stats, schedule)

    def _admit(self, rid: str, prompt_len: int, output_len: int, arrival: float, rec: RequestRecord,
               live: dict[str, tuple[Sequence, RequestRecord]]) -> None:
        """Accept a request as `LLMEngine.add_request` does, or record why the engine would refuse it."""
        total = prompt_len + output_len
        if prompt_len < 1 or output_len < 1:
            rec.error = f"ValueError: prompt and output lengths must be >= 1, got {prompt_len}, {output_len}"
            return
        if self.max_model_len is not None and total > self.max_model_len:
            rec.error = f"ValueError: {total} tokens exceed max_model_len {self.max_model_len}"
            return
        need = self.block_manager.blocks_for(total)
        if need > self.block_manager.device.num_blocks:
            rec.error = (f"ValueError: prompt + max_tokens need {need} KV blocks, the device pool has "
                         f"{self.block_manager.device.num_blocks}")
            return
        params = SamplingParams(max_tokens=output_len, temperature=0.0, ignore_eos=True)
        seq = Sequence(rid, [0] * prompt_len, params, arrival)
        live[rid] = (seq, rec)
        self.policy.add(seq, arrival)

    def _finish(self, seq: Sequence, rec: RequestRecord, now: float,
                live: dict[str, tuple[Sequence, RequestRecord]]) -> None:
        """As `LLMEngine._finish`: the policy forgets it, its blocks are freed."""
        seq.is_finished, seq.finish_reason, seq.finish_time = True, "length", now
        rec.finish_time, rec.num_output_tokens = now, seq.num_output_tokens
        self.policy.remove(seq)
        self.block_manager.free(seq.request_id)
        seq.kv_location = KVLocation.NONE
        del live[seq.request_id]

    def _check(self, decision: Any, live: dict[str, tuple[Sequence, RequestRecord]]) -> None:
        """The engine's `_check_decision`: a policy bug fails loudly here as it would there."""
        name = type(self.policy).__name__
        if len(decision.scheduled) > self.policy.max_num_seqs:
            raise RuntimeError(f"{name}: scheduled {len(decision.scheduled)} requests > max_num_seqs")
        if decision.num_batched_tokens > self.policy.max_num_batched_tokens:
            raise RuntimeError(f"{name}: scheduled {decision.num_batched_tokens} tokens "
                               "> max_num_batched_tokens")
        if not self.check_invariants:
            return
        for item in decision.scheduled:
            if item.seq.request_id not in live:
                raise RuntimeError(f"{name}: scheduled finished or unknown request {item.seq.request_id!r}")
