"""FastServe's skip-join MLFQ (arXiv 2305.05920) with token-level preemption and proactive KV swapping.

Rules (serving reference §2.2-2.3; re-implemented from the described behaviour, no code copied):

- Levels p = 0, 1, 2, ... are created on demand; level p has quantum q_p = q0 * 2**p.
- Arrival: with skip-join, a job joins the back of level p0 = the smallest p >= 0 with
  q0 * 2**p >= T_pre, T_pre its *measured* prefill time for its prompt length (a `Profile`, inclusive
  boundary). Without skip-join (plain `mlfq`) every job joins level 0.
- Batch: scan levels from 0 up, FIFO within a level; add jobs while the batch has fewer than
  `max_num_seqs` and their tokens fit the token budget; the first misfit ends the scan (a job longer
  than the whole budget is chunked when it would otherwise run alone). While the host pool is under
  pressure (free/total < `defer_host_free_ratio`), jobs not yet started are skipped (deferred), unless
  nothing else could run: the engine never idles while a job could run.
- Accounting: each job in the batch adds the step's wall time to its time at its level. A job whose
  time strictly exceeds its level's quantum drops one level (time reset). Every job that ran goes
  back to the *front* of its level, so started jobs stay ahead of newer arrivals at that level.
- Starvation: every `starvation_interval` steps, jobs idle for >= `starvation_threshold_s` are
  promoted. The paper moves them to the front of level 0, where they are demoted again like any job
  (`starvation_hold="off"`). Otherwise a promoted job joins the back of a FIFO *starved* queue, served
  before level 0, and keeps its place there with no demotion: until it finishes (``"finish"``), or, by
  default (``"quantum"``), until it has run the quantum of the level it was promoted from, after which
  it returns to the front of that level. That hold doubles each time the job is promoted without having
  got further than at its earlier promotions (its KV was dropped for recompute meanwhile).
- Token-level preemption: a job left out of the batch stops at that iteration and keeps its KV on the
  device unless memory is needed; then the memory mode decides (`MemoryMode`):
  ``proactive-swap`` keeps a reserve R = max(max_num_seqs, `min_free_blocks`) of free device blocks,
  offloading idle jobs from the back of the lowest level first, and prefetches host-resident jobs from
  the top levels when nothing was offloaded in the step; ``reactive-swap`` swaps out only what the
  batch needs, with no reserve and no prefetch; ``recompute`` drops KV instead of swapping it. A swap
  that does not fit the host pool falls back to recompute. If offloading idle jobs is not enough, jobs
  leave the batch from its end (they keep their queue place).

Deviations, each for a reason: the reserve is met only by offloading *idle* jobs (a batch is never
shrunk just to keep spare blocks, which would idle a small pool); deferral yields to work conservation.
Promotions hold (`starvation_hold`): the paper's rule (serving reference §2.2, step 5) says only where a
starved job goes, not what protects it afterwards, and it oscillates under overload: each check lifts
hundreds of idle jobs to level 0, each runs about one step (q0 = 10 ms is shorter than a step) and is
demoted, and the next wave's KV must be swapped in or recomputed, evicting the last wave's (Azure-conv
lengths at 3 req/s on OPT-13B/A100: 21k preemptions, mean JCT 14x FCFS's). With a threshold shorter
than a job's service time it can livelock: jobs that do not fit the pool together keep promoting past
each other and evicting each other for recompute. A held promotion cannot oscillate (the starved
queue's head is the last job dropped from a batch, and runs for its whole hold), and the doubling
bounds how often a job can be promoted without progress, so every job finishes. ``"finish"`` is the
most robust under overload and gives up most of MLFQ's gain near saturation (docs/sim.md).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from itertools import chain, islice
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundry.serve.block_manager import BlockManager
from foundry.serve.policies.base import MemoryBudget, Policy, ScheduledRequest, SchedulerOutput
from foundry.serve.sequence import KV_DEVICE, KV_HOST, Sequence

MemoryMode = Literal["proactive-swap", "reactive-swap", "recompute"]
MEMORY_MODES = ("proactive-swap", "reactive-swap", "recompute")
StarvationHold = Literal["quantum", "finish", "off"]
STARVATION_HOLDS = ("quantum", "finish", "off")


class MLFQOptions(BaseModel):
    """Options of mlfq, sj-mlfq and srpt (`SchedulerConfig.mlfq`; flat names `mlfq_*`). The defaults
    are the paper's values (serving reference §2.2-2.3) except `starvation_hold` (docs/fastserve.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    flat_prefix: ClassVar[str] = "mlfq_"

    base_quantum: float | None = Field(
        0.010, gt=0, description="base quantum q0 in seconds, or 'auto' (None in Python): the paper's "
        "10 ms scaled to the latency profile"
    )
    starvation_interval: int = Field(1000, ge=1, description="steps between starvation checks")
    starvation_threshold: float = Field(3.0, ge=0, description="idle seconds after which a job is promoted")
    starvation_hold: StarvationHold = Field(
        "quantum", description="how long a promoted starved job is kept from demotion ('off': the paper)"
    )
    defer_host_free_ratio: float = Field(
        0.1, ge=0, le=1, description="defer new prefills while free/total host blocks is below this"
    )
    memory_mode: MemoryMode = Field(
        "proactive-swap", description="how mlfq, sj-mlfq and srpt free the device KV of preempted jobs"
    )
    min_free_blocks: int = Field(
        0, ge=0, description="proactive-swap reserve: max(max_num_seqs, this) free device blocks"
    )

    @field_validator("base_quantum", mode="before")
    @classmethod
    def _auto(cls, v: Any) -> Any:
        return None if v == "auto" else v


def skip_join_level(prefill_time: float, base_quantum: float) -> int:
    """Smallest p >= 0 with base_quantum * 2**p >= prefill_time (the quantum covers it, boundary included)."""
    if prefill_time <= base_quantum:
        return 0
    p = max(0, math.ceil(math.log2(prefill_time / base_quantum)))
    while base_quantum * 2 ** p < prefill_time:  # guard against log2 rounding down
        p += 1
    while p > 0 and base_quantum * 2 ** (p - 1) >= prefill_time:  # ... or up
        p -= 1
    return p


class MLFQPolicy(Policy):
    """Multi-level feedback queue; `skip_join=True` is FastServe's skip-join MLFQ (`sj-mlfq`)."""

    name = "mlfq"

    def __init__(self, max_num_seqs: int, max_num_batched_tokens: int, *, base_quantum: float = 0.010,
                 skip_join: bool = False, prefill_time: Callable[[int], float] | None = None,
                 starvation_interval: int = 1000, starvation_threshold_s: float = 3.0,
                 starvation_hold: StarvationHold = "quantum", defer_host_free_ratio: float = 0.1,
                 memory_mode: MemoryMode = "proactive-swap", min_free_blocks: int = 0) -> None:
        super().__init__(max_num_seqs, max_num_batched_tokens)
        if not base_quantum > 0:
            raise ValueError(f"base_quantum: must be > 0 seconds, got {base_quantum}")
        if skip_join and prefill_time is None:
            raise ValueError("prefill_time: skip-join needs the measured prefill time (a Profile)")
        if starvation_interval < 1:
            raise ValueError(f"starvation_interval: must be >= 1 step, got {starvation_interval}")
        if not starvation_threshold_s >= 0:
            raise ValueError(f"starvation_threshold_s: must be >= 0, got {starvation_threshold_s}")
        if starvation_hold not in STARVATION_HOLDS:
            raise ValueError(f"starvation_hold: must be one of {STARVATION_HOLDS}, got {starvation_hold!r}")
        if not 0 <= defer_host_free_ratio <= 1:
            raise ValueError(f"defer_host_free_ratio: must be in [0, 1], got {defer_host_free_ratio}")
        if memory_mode not in MEMORY_MODES:
            raise ValueError(f"memory_mode: must be one of {MEMORY_MODES}, got {memory_mode!r}")
        if min_free_blocks < 0:
            raise ValueError(f"min_free_blocks: must be >= 0, got {min_free_blocks}")
        self.base_quantum = base_quantum
        self.skip_join = skip_join
        self.prefill_time = prefill_time
        self.starvation_interval = starvation_interval
        self.starvation_threshold_s = starvation_threshold_s
        self.starvation_hold = starvation_hold
        self.defer_host_free_ratio = defer_host_free_ratio
        self.memory_mode = memory_mode
        self.min_free_blocks = min_free_blocks
        self.levels: list[deque[Sequence]] = []
        self.starved: deque[Sequence] = deque()  # held promotions, FIFO, served before level 0
        self.num_steps = 0
        self.num_demotions = 0
        self.num_promotions = 0
        self.num_deferred = 0  # prefills skipped under host-swap pressure (counted per step)

    # ---- queues --------------------------------------------------------------------------------
    def quantum(self, level: int) -> float:
        return self.base_quantum * 2 ** level

    def initial_level(self, seq: Sequence) -> int:
        if not self.skip_join:
            return 0
        assert self.prefill_time is not None
        return skip_join_level(self.prefill_time(seq.num_prompt_tokens), self.base_quantum)

    def _queue(self, level: int) -> deque[Sequence]:
        while len(self.levels) <= level:
            self.levels.append(deque())
        return self.levels[level]

    def add(self, seq: Sequence, now: float) -> None:
        seq.priority = self.initial_level(seq)
        seq.policy_state["level_time"] = 0.0
        seq.last_scheduled_time = now  # idle time counts from arrival
        self._queue(seq.priority).append(seq)

    def remove(self, seq: Sequence) -> None:
        if seq.policy_state.get("held"):
            if seq in self.starved:
                self.starved.remove(seq)
        elif seq.priority < len(self.levels) and seq in self.levels[seq.priority]:
            self.levels[seq.priority].remove(seq)

    def queued(self) -> list[Sequence]:
        """All jobs in priority order (held promotions, then level 0, ...; front first)."""
        return [*self.starved, *(s for q in self.levels for s in q)]

    def _scan(self) -> Iterator[Sequence]:
        """`queued()` lazily: a scan that stops early does not build the whole list (queues unchanged)."""
        return chain(self.starved, chain.from_iterable(self.levels))

    def stats(self) -> dict[str, object]:
        return {"queue_levels": [len(q) for q in self.levels], "num_starved_queued": len(self.starved),
                "num_demotions": self.num_demotions, "num_promotions": self.num_promotions,
                "num_deferred_prefills": self.num_deferred}

    # ---- one step ------------------------------------------------------------------------------
    def schedule(self, now: float, memory: BlockManager) -> SchedulerOutput:
        self.num_steps += 1
        if self.num_steps % self.starvation_interval == 0:
            self._promote_starved(now)
        mem = MemoryBudget(memory)
        batch = self._pick_batch(memory)
        out = SchedulerOutput()
        self._reserve_memory(batch, out, mem)
        out.scheduled = batch
        return out

    def _promote_starved(self, now: float) -> None:
        threshold = self.starvation_threshold_s
        starved = [s for q in self.levels for s in q
                   if now - (s.last_scheduled_time or s.arrival_time) >= threshold]
        if self.starvation_hold != "off":  # behind earlier promotions, held (see the module doc)
            for seq in starved:
                self.levels[seq.priority].remove(seq)
                state = seq.policy_state
                # the hold doubles each time the job is promoted without having got further than at any
                # earlier promotion (its KV was dropped and recomputed): so it cannot livelock
                mark = state.get("promoted_at_tokens", -1)
                k = state.get("hold_doublings", 0) + (seq.num_computed_tokens <= mark)
                state["hold_doublings"], state["promoted_at_tokens"] = k, max(mark, seq.num_computed_tokens)
                state["hold_left"] = self.quantum(seq.priority) * 2 ** k
                state["home_level"], state["held"] = seq.priority, True
                seq.priority, state["level_time"] = 0, 0.0
                self.starved.append(seq)
            self.num_promotions += len(starved)
            return
        for seq in reversed(starved):  # the paper's rule: front of level 0, relative order kept
            self.levels[seq.priority].remove(seq)
            if seq.priority > 0:
                self.num_promotions += 1
            seq.priority, seq.policy_state["level_time"] = 0, 0.0
            self._queue(0).appendleft(seq)

    def _host_under_pressure(self, memory: BlockManager) -> bool:
        total = memory.host.num_blocks
        return total > 0 and memory.num_free_host_blocks / total < self.defer_host_free_ratio

    def _pick_batch(self, memory: BlockManager) -> list[ScheduledRequest]:
        batch: list[ScheduledRequest] = []
        budget = self.max_num_batched_tokens
        defer = self._host_under_pressure(memory)
        deferred: list[Sequence] = []
        max_num_seqs = self.max_num_seqs
        for seq in self._scan():
            if len(batch) >= max_num_seqs or budget == 0:
                break
            if defer and seq.num_computed_tokens == 0 and seq.is_prefilling:
                deferred.append(seq)
                continue
            # (hot path: `seq.num_uncomputed_tokens`, inlined)
            n = len(seq.prompt_token_ids) + len(seq.output_token_ids) - seq.num_computed_tokens
            if n > budget:
                if batch:
                    break  # the first misfit ends the scan
                n = budget  # alone and longer than the whole budget: run a chunk
            batch.append(ScheduledRequest(seq, n))
            budget -= n
        self.num_deferred += len(deferred)
        if not batch and deferred:  # work conservation beats deferral
            seq = deferred[0]
            batch.append(ScheduledRequest(seq, min(seq.num_uncomputed_tokens, budget)))
        return batch

    def _evict(self, seq: Sequence, out: SchedulerOutput, mem: MemoryBudget) -> None:
        """Free `seq`'s device blocks: swap them to the host if the mode and the host allow, else drop."""
        held = mem.device_blocks_held(seq)
        mem.free_device += held
        if (self.memory_mode != "recompute" and held <= mem.free_host
                and mem.memory.can_swap_out(seq.request_id)):
            mem.free_host -= held
            out.swap_out.append(seq)
        else:
            out.recompute.append(seq)

    def _reserve_memory(self, batch: list[ScheduledRequest], out: SchedulerOutput, mem: MemoryBudget) -> None:
        proactive = self.memory_mode == "proactive-swap"
        reserve = max(self.max_num_seqs, self.min_free_blocks) if proactive else 0
        # What the batch needs: each job's blocks depend only on that job and the (unchanged) block
        # manager, so the sum is computed once and reduced as jobs leave the batch. (Hot path: for a
        # device-resident job `blocks_to_run` is inlined, the same number.)
        needs: list[int] = []
        on_host: list[int] = []  # batch positions of jobs whose KV is on the host (step 3)
        num_new_blocks = mem.memory.num_new_blocks
        for item in batch:
            seq = item.seq
            location = seq.kv_location
            if location is KV_DEVICE:
                needs.append(num_new_blocks(seq.request_id, seq.num_computed_tokens + item.num_tokens))
            else:
                if location is KV_HOST:
                    on_host.append(len(needs))
                needs.append(mem.blocks_to_run(seq, item.num_tokens))
        need = sum(needs)

        # 1. offload idle device-resident jobs: lowest level first, back of the queue first
        if reserve + need > mem.free_device:
            in_batch = {id(item.seq) for item in batch}
            for level in chain(reversed(self.levels), (self.starved,)):
                for seq in reversed(level):
                    if reserve + need <= mem.free_device:
                        break
                    if id(seq) not in in_batch and mem.device_blocks_held(seq) > 0:
                        self._evict(seq, out, mem)
        # 2. still short of what the batch needs: jobs leave the batch from its end
        while batch and need > mem.free_device:
            item = batch.pop()
            need -= needs.pop()
            if mem.device_blocks_held(item.seq) > 0 and need > mem.free_device:
                self._evict(item.seq, out, mem)
        # 3. batch jobs on the host come back
        for i in on_host:
            if i >= len(batch):
                break  # left the batch in step 2
            seq = batch[i].seq
            mem.free_host += mem.memory.num_blocks(seq.request_id)
            out.swap_in.append(seq)
        mem.free_device -= need
        # 4. prefetch: nothing offloaded this step, walk the top levels over at most max_num_seqs jobs.
        # (Skipped when the host pool is empty: then no job's KV is on the host, so the walk finds none.)
        host = mem.memory.host
        if proactive and not out.swap_out and not out.recompute and host.num_free < host.num_blocks:
            in_batch = {id(item.seq) for item in batch}
            for seq in islice(self._scan(), self.max_num_seqs):
                if seq.kv_location is not KV_HOST or id(seq) in in_batch:
                    continue
                blocks = mem.memory.num_blocks(seq.request_id)
                if mem.free_device >= reserve + blocks:
                    mem.free_device -= blocks
                    mem.free_host += blocks
                    out.swap_in.append(seq)

    def update(self, output: SchedulerOutput, now: float, elapsed: float) -> None:
        ran, released = [], []
        for item in output.scheduled:
            seq = item.seq
            state = seq.policy_state
            seq.service_time += elapsed
            seq.last_scheduled_time = now
            if state.get("held"):  # a held promotion keeps its place, no demotion, until its hold is used
                state["hold_left"] -= elapsed
                if self.starvation_hold == "quantum" and state["hold_left"] < 0 and seq in self.starved:
                    released.append(seq)
            else:
                ran.append(seq)
        for seq in reversed(released):  # back to the front of the level it was promoted from
            self.starved.remove(seq)
            seq.policy_state["held"] = False
            seq.priority, seq.policy_state["level_time"] = seq.policy_state["home_level"], 0.0
            self._queue(seq.priority).appendleft(seq)
        if ran:
            self._requeue(ran, elapsed)

    def _requeue(self, ran: list[Sequence], elapsed: float) -> None:
        """Account `elapsed` at each job's level, demote, and put every job that ran back at the front of
        its level in batch order (a job removed already, e.g. finished or aborted, is not requeued)."""
        levels, base = self.levels, self.base_quantum
        # Fast path, the same result: when each level's jobs in the batch are exactly its first jobs in
        # batch order (the scan takes levels front first), only demoted jobs move.
        heads: dict[int, int] = {}
        for seq in ran:
            p = seq.priority
            i = heads.get(p, 0)
            if p >= len(levels) or i >= len(levels[p]) or levels[p][i] is not seq:
                break
            heads[p] = i + 1
        else:
            demoted = []
            for seq in ran:
                state = seq.policy_state
                t = state.get("level_time", 0.0) + elapsed
                if t > base * 2 ** seq.priority:  # strictly exceeds the quantum: demote one level
                    levels[seq.priority].remove(seq)
                    seq.priority += 1
                    t = 0.0
                    self.num_demotions += 1
                    demoted.append(seq)
                state["level_time"] = t
            for seq in reversed(demoted):  # ahead of the next level's jobs that ran (batch order)
                self._queue(seq.priority).appendleft(seq)
            return
        ran = [seq for seq in ran if seq in self._queue(seq.priority)]
        for seq in ran:
            self.levels[seq.priority].remove(seq)
            t = seq.policy_state.get("level_time", 0.0) + elapsed
            if t > self.quantum(seq.priority):  # strictly exceeds: demote one level
                seq.priority += 1
                t = 0.0
                self.num_demotions += 1
            seq.policy_state["level_time"] = t
        for seq in reversed(ran):  # back to the front, batch order kept
            self._queue(seq.priority).appendleft(seq)
