"""Test helper: the engine's post-step bookkeeping without a model, for driving policies in pure Python."""

from foundry.serve.block_manager import BlockManager
from foundry.serve.policies.base import Policy, SchedulerOutput
from foundry.serve.sequence import KVLocation


def emit_placeholder_tokens(decision: SchedulerOutput, policy: Policy, bm: BlockManager, now: float) -> None:
    """Each scheduled request whose tokens are all computed emits token 0; one that reached
    `max_tokens` finishes at `now`, leaves the policy and frees its blocks."""
    for item in decision.scheduled:
        s = item.seq
        if s.num_computed_tokens == s.num_tokens:
            s.output_token_ids.append(0)
            if s.num_output_tokens >= s.params.max_tokens:
                s.is_finished, s.finish_time = True, now
                policy.remove(s)
                bm.free(s.request_id)
                s.kv_location = KVLocation.NONE
