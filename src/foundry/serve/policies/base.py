"""The policy interface: plain Python over request state. No torch, no clock, no engine import.

Each step the engine calls `schedule(now, memory)`; the policy answers with a `SchedulerOutput`,
which is data: the batch (which requests, how many tokens each) and the memory actions (swap out,
swap in, drop for recompute). The engine loop applies it through the block manager; the policy
only *reads* `memory`. A request left out of the batch is preempted at token granularity and
keeps its KV where it is. `update` then tells the policy how long the step took (`now` and
`elapsed` are wall time in the engine and virtual time in the simulator).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from foundry.serve.block_manager import BlockManager
from foundry.serve.sequence import KV_DEVICE, KV_HOST, Sequence


@dataclass(slots=True)
class ScheduledRequest:
    seq: Sequence
    num_tokens: int  # tokens to compute this step: a prefill chunk, a recompute chunk or 1 decode

    @property
    def is_decode(self) -> bool:
        """One token after cached ones. A 1-token chunk of a fresh prompt is a prefill (nothing cached)."""
        return self.num_tokens == 1 and self.seq.num_computed_tokens > 0

    @property
    def is_last_chunk(self) -> bool:
        """It catches up with all its tokens this step, so the step's last logits give it a token."""
        s = self.seq
        return s.num_computed_tokens + self.num_tokens == len(s.prompt_token_ids) + len(s.output_token_ids)


@dataclass
class SchedulerOutput:
    scheduled: list[ScheduledRequest] = field(default_factory=list)
    swap_out: list[Sequence] = field(default_factory=list)  # device -> host, applied first
    recompute: list[Sequence] = field(default_factory=list)  # drop KV; recompute when rescheduled
    swap_in: list[Sequence] = field(default_factory=list)  # host -> device, before the batch runs

    @property
    def num_batched_tokens(self) -> int:
        return sum(s.num_tokens for s in self.scheduled)

    @property
    def is_empty(self) -> bool:
        return not (self.scheduled or self.swap_out or self.recompute or self.swap_in)


class MemoryBudget:
    """A policy's scratch view of free blocks while it builds one decision (the manager is untouched)."""

    def __init__(self, memory: BlockManager) -> None:
        self.memory = memory
        self.free_device = memory.num_free_device_blocks
        self.free_host = memory.num_free_host_blocks

    def blocks_to_run(self, seq: Sequence, num_tokens: int) -> int:
        """Device blocks needed before `seq` can compute `num_tokens` more tokens (incl. swap-in)."""
        total = seq.num_computed_tokens + num_tokens
        if seq.kv_location is KV_HOST:
            return max(self.memory.num_blocks(seq.request_id), self.memory.blocks_for(total))
        return self.memory.num_new_blocks(seq.request_id, total)

    def device_blocks_held(self, seq: Sequence) -> int:
        """Device blocks that dropping or swapping out `seq`'s KV frees (not those a fork shares)."""
        return self.memory.num_exclusive_blocks(seq.request_id) if seq.kv_location is KV_DEVICE else 0


class Policy(ABC):
    """Owns the queues. Subclasses decide; they never mutate the block manager."""

    name: str = "base"

    def __init__(self, max_num_seqs: int, max_num_batched_tokens: int) -> None:
        if max_num_seqs < 1:
            raise ValueError(f"max_num_seqs: must be >= 1, got {max_num_seqs}")
        if max_num_batched_tokens < 1:
            raise ValueError(f"max_num_batched_tokens: must be >= 1, got {max_num_batched_tokens}")
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens

    @abstractmethod
    def add(self, seq: Sequence, now: float) -> None:
        """A new request arrives."""

    @abstractmethod
    def remove(self, seq: Sequence) -> None:
        """A request finished or was aborted: forget it."""

    @abstractmethod
    def schedule(self, now: float, memory: BlockManager) -> SchedulerOutput:
        """Decide this step's batch and memory actions."""

    def update(self, output: SchedulerOutput, now: float, elapsed: float) -> None:
        """After the step ran: `elapsed` seconds, ending at `now`. Default: account service time."""
        for item in output.scheduled:
            item.seq.service_time += elapsed
            item.seq.last_scheduled_time = now

    def stats(self) -> dict[str, object]:
        """The policy's own series for /metrics (e.g. MLFQ queue lengths per level); none by default."""
        return {}
