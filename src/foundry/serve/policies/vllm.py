"""vLLM-style policy (after vLLM V1's scheduler): running first, chunked prefill, preempt the newest.

One token budget per step. Running requests go first, oldest first, each computing what it still
lacks (a prefill chunk or one decode token) within the budget. When the device pool cannot hold a
request's next tokens, the newest running request is preempted: its KV is dropped for recompute
(vLLM V1's only mode), or, with `preemption_mode="swap"`, copied to the host pool when it fits
there (vLLM V0's swap mode). Swapped requests come back before new ones; no request is admitted in
a step that preempted.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from foundry.serve.block_manager import BlockManager
from foundry.serve.policies.base import MemoryBudget, Policy, ScheduledRequest, SchedulerOutput
from foundry.serve.sequence import KV_DEVICE, Sequence


class VLLMOptions(BaseModel):
    """The vllm policy's options (`SchedulerConfig.vllm`; flat names as they are)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    flat_prefix: ClassVar[str] = ""

    preemption_mode: Literal["recompute", "swap"] = Field(
        "recompute", description="what the vllm policy does with a preempted request's KV: drop it, or swap "
        "it to the host pool",
    )


class VLLMPolicy(Policy):
    name = "vllm"

    def __init__(self, max_num_seqs: int, max_num_batched_tokens: int,
                 preemption_mode: Literal["recompute", "swap"] = "recompute") -> None:
        super().__init__(max_num_seqs, max_num_batched_tokens)
        if preemption_mode not in ("recompute", "swap"):
            raise ValueError(f"preemption_mode: must be 'recompute' or 'swap', got {preemption_mode!r}")
        self.preemption_mode = preemption_mode
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.swapped: deque[Sequence] = deque()

    def add(self, seq: Sequence, now: float) -> None:
        self.waiting.append(seq)

    def remove(self, seq: Sequence) -> None:
        for queue in (self.running, self.waiting, self.swapped):
            if seq in queue:
                queue.remove(seq)
                return

    def schedule(self, now: float, memory: BlockManager) -> SchedulerOutput:
        out = SchedulerOutput()
        mem = MemoryBudget(memory)
        budget = self.max_num_batched_tokens
        preempted = False

        # 1. running requests, oldest first; preempt from the newest end when blocks run short
        # (hot path, once per running request per step: `num_uncomputed_tokens` and, for the usual
        # device-resident request, `MemoryBudget.blocks_to_run` are inlined; the results are the same)
        running, num_new_blocks = self.running, memory.num_new_blocks
        i = 0
        while i < len(running) and budget > 0:
            seq = running[i]
            n = len(seq.prompt_token_ids) + len(seq.output_token_ids) - seq.num_computed_tokens
            if n > budget:
                n = budget
            if seq.kv_location is KV_DEVICE:
                need = num_new_blocks(seq.request_id, seq.num_computed_tokens + n)
            else:
                need = mem.blocks_to_run(seq, n)
            while need > mem.free_device and self.running[-1] is not seq:
                self._preempt(self.running.pop(), out, mem)
                preempted = True
            if need > mem.free_device:  # it is the newest itself
                self._preempt(self.running.pop(), out, mem)
                preempted = True
                break
            mem.free_device -= need
            out.scheduled.append(ScheduledRequest(seq, n))
            budget -= n
            i += 1
        if preempted:
            return out

        # 2. swapped requests come back first, oldest first
        while self.swapped and len(self.running) < self.max_num_seqs and budget > 0:
            seq = self.swapped[0]
            n = min(seq.num_uncomputed_tokens, budget)
            need = mem.blocks_to_run(seq, n)
            if need > mem.free_device:
                break
            self.swapped.popleft()
            mem.free_device -= need
            mem.free_host += memory.num_blocks(seq.request_id)
            out.swap_in.append(seq)
            self.running.append(seq)
            out.scheduled.append(ScheduledRequest(seq, n))
            budget -= n

        # 3. new (or recompute-preempted) requests, in order, chunked to the budget
        while self.waiting and not self.swapped and len(self.running) < self.max_num_seqs and budget > 0:
            seq = self.waiting[0]
            n = min(seq.num_uncomputed_tokens, budget)
            need = mem.blocks_to_run(seq, n)
            if need > mem.free_device:
                break
            self.waiting.popleft()
            mem.free_device -= need
            self.running.append(seq)
            out.scheduled.append(ScheduledRequest(seq, n))
            budget -= n
        return out

    def _preempt(self, seq: Sequence, out: SchedulerOutput, mem: MemoryBudget) -> None:
        held = mem.device_blocks_held(seq)
        mem.free_device += held
        can_swap = held <= mem.free_host and mem.memory.can_swap_out(seq.request_id)
        if self.preemption_mode == "swap" and can_swap:
            mem.free_host -= held
            out.swap_out.append(seq)
            self.swapped.appendleft(seq)
        else:
            out.recompute.append(seq)
            self.waiting.appendleft(seq)
