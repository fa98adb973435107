"""Apply a policy's decision to the block manager and request state; return the KV copies to run.

Torch-free, so the engine and the simulator share it: the engine hands `MemoryPlan` to the cache
engine, the simulator turns its block counts into transfer time. Order matters and is fixed here:
drops for recompute, swap-outs, swap-ins, then growth of the batch's tables. Executing the copies
in the order swap_out → swap_in → copy_on_write is safe even when a block freed by one action is
reused by a later one, because every copy reads data that no earlier copy in that order overwrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from foundry.serve.block_manager import BlockManager, CopyPlan
from foundry.serve.policies.base import SchedulerOutput
from foundry.serve.sequence import KV_DEVICE, KV_HOST, KV_NONE


@dataclass
class MemoryPlan:
    swap_out: CopyPlan = field(default_factory=list)  # (device_block, host_block)
    swap_in: CopyPlan = field(default_factory=list)  # (host_block, device_block)
    copy_on_write: CopyPlan = field(default_factory=list)  # (device_block, device_block)
    num_recomputed: int = 0
    num_swapped_out: int = 0
    num_swapped_in: int = 0

    @property
    def num_preempted(self) -> int:
        return self.num_recomputed + self.num_swapped_out


def apply_decision(decision: SchedulerOutput, memory: BlockManager) -> MemoryPlan:
    plan = MemoryPlan()
    for seq in decision.recompute:
        memory.free(seq.request_id)
        seq.num_computed_tokens = 0
        seq.kv_location = KV_NONE
        seq.num_preemptions += 1
        plan.num_recomputed += 1
    for seq in decision.swap_out:
        plan.swap_out += memory.swap_out(seq.request_id)
        seq.kv_location = KV_HOST
        seq.num_preemptions += 1
        plan.num_swapped_out += 1
    for seq in decision.swap_in:
        plan.swap_in += memory.swap_in(seq.request_id)
        seq.kv_location = KV_DEVICE
        plan.num_swapped_in += 1
    for item in decision.scheduled:
        seq, total = item.seq, item.seq.num_computed_tokens + item.num_tokens
        # (hot path: `seq.num_uncomputed_tokens`, inlined)
        if item.num_tokens < 1 or total > len(seq.prompt_token_ids) + len(seq.output_token_ids):
            raise RuntimeError(f"request {seq.request_id!r}: scheduled {item.num_tokens} tokens, "
                               f"{seq.num_uncomputed_tokens} left to compute")
        if seq.kv_location is KV_DEVICE:
            copies = memory.append(seq.request_id, total)
            if copies:  # (rare: a shared partial block is copied before the write)
                plan.copy_on_write += copies
        elif seq.kv_location is KV_NONE:
            memory.allocate(seq.request_id, total)
            seq.kv_location = KV_DEVICE
        else:
            raise RuntimeError(f"request {seq.request_id!r}: scheduled while its KV is on the host")
    return plan

