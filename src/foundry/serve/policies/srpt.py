"""SRPT with oracle output lengths: a best-case reference for JCT, not a deployable policy.

**An oracle.** It orders jobs by their remaining output tokens, `max_tokens - generated`, which is the
true remaining work only when the request runs to `max_tokens` (``ignore_eos``, as in the
benchmarks). A real server does not know output lengths in advance; FastServe's artifact uses SRPT the
same way, as a lower bound (serving reference §2.4).

Each step re-sorts all jobs (preemptive, at token granularity: ties broken by arrival) and reuses the
MLFQ policy's batch building and KV management (memory modes, reserve, eviction order), with one level.
"""

from __future__ import annotations

from collections.abc import Iterator

from foundry.serve.policies.base import SchedulerOutput
from foundry.serve.policies.mlfq import MemoryMode, MLFQPolicy
from foundry.serve.sequence import Sequence


def remaining_work(seq: Sequence) -> tuple[int, int, float]:
    """(output tokens left, prompt tokens left, arrival): the oracle's sort key."""
    outputs_left = seq.params.max_tokens - seq.num_output_tokens
    prompt_left = max(0, seq.num_prompt_tokens - seq.num_computed_tokens)
    return outputs_left, prompt_left, seq.arrival_time


class SRPTOraclePolicy(MLFQPolicy):
    name = "srpt"

    def __init__(self, max_num_seqs: int, max_num_batched_tokens: int, *,
                 memory_mode: MemoryMode = "proactive-swap", min_free_blocks: int = 0,
                 defer_host_free_ratio: float = 0.1) -> None:
        super().__init__(max_num_seqs, max_num_batched_tokens, skip_join=False, memory_mode=memory_mode,
                         min_free_blocks=min_free_blocks, defer_host_free_ratio=defer_host_free_ratio)

    def queued(self) -> list[Sequence]:
        return sorted(self.levels[0] if self.levels else (), key=remaining_work)

    def _scan(self) -> Iterator[Sequence]:
        return iter(self.queued())

    def _promote_starved(self, now: float) -> None:
        return  # a pure SRPT has no aging

    def update(self, output: SchedulerOutput, now: float, elapsed: float) -> None:
        for item in output.scheduled:
            item.seq.service_time += elapsed
            item.seq.last_scheduled_time = now
