"""Test helper: the engine core's post-step half without a model, for driving policies in pure Python."""

from foundry.serve.block_manager import BlockManager
from foundry.serve.core import EngineCore
from foundry.serve.policies.base import Policy, SchedulerOutput


def emit_placeholder_tokens(decision: SchedulerOutput, policy: Policy, bm: BlockManager, now: float) -> None:
    """`EngineCore.emit` on the batch that ran: its tokens are computed, each request that caught up emits
    token 0, and one that reached `max_tokens` finishes at `now` (the policy forgets it, its blocks are
    freed). The tests add requests to the policy directly, so the core's table is the batch."""
    core = EngineCore(policy, bm, executor=None, max_num_seqs=policy.max_num_seqs,
                      max_num_batched_tokens=policy.max_num_batched_tokens)
    core.requests.update((item.seq.request_id, item.seq) for item in decision.scheduled)
    core.emit(decision, None, now)
