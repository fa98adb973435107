"""FCFS run-to-completion, Orca-style iteration-level batching.

Requests join the batch in arrival order and, once admitted, run every step until they finish:
admission reserves device blocks for the request's whole prompt + max_tokens, so no running
request is ever preempted. A whole prompt is prefilled in one step (a prompt longer than the token
budget is split only when it is alone in the step). Head-of-line: the first waiting request that
does not fit blocks those behind it.
"""

from __future__ import annotations

from collections import deque

from foundry.serve.block_manager import BlockManager
from foundry.serve.policies.base import MemoryBudget, Policy, ScheduledRequest, SchedulerOutput
from foundry.serve.sequence import Sequence


class FCFSPolicy(Policy):
    name = "fcfs"

    def __init__(self, max_num_seqs: int, max_num_batched_tokens: int) -> None:
        super().__init__(max_num_seqs, max_num_batched_tokens)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence, now: float) -> None:
        self.waiting.append(seq)

    def remove(self, seq: Sequence) -> None:
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)

    def schedule(self, now: float, memory: BlockManager) -> SchedulerOutput:
        out = SchedulerOutput()
        mem = MemoryBudget(memory)
        # blocks promised to running requests but not yet allocated (`num_new_blocks` also counts the
        # copy of a last block shared with a forked sample; otherwise it is blocks_for(max) - held)
        reserved = sum(memory.num_new_blocks(s.request_id, s.max_num_tokens) for s in self.running)
        free = mem.free_device - reserved
        budget = self.max_num_batched_tokens
        for seq in self.running:
            if budget == 0:
                break
            n = min(seq.num_uncomputed_tokens, budget)
            out.scheduled.append(ScheduledRequest(seq, n))
            budget -= n
        while self.waiting and len(self.running) < self.max_num_seqs and budget > 0:
            seq = self.waiting[0]
            need = memory.num_new_blocks(seq.request_id, seq.max_num_tokens)  # a forked sample holds some
            if need > free:
                break
            if seq.num_uncomputed_tokens > budget and out.scheduled:
                break  # Orca prefills whole prompts; split one only when it runs alone
            n = min(seq.num_uncomputed_tokens, budget)
            self.waiting.popleft()
            self.running.append(seq)
            out.scheduled.append(ScheduledRequest(seq, n))
            free -= need
            budget -= n
        return out
