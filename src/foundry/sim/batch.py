"""What a cost model sees of one step: the batch's composition, read off a policy's decision.

One function, `batch_features`, is used by the simulator's executor and by `RecordingPolicy` when
the real engine is calibrated, so fitted coefficients mean the same thing on both sides.

A scheduled request computing `n` tokens after `c` cached ones is a *decode* when
`ScheduledRequest.is_decode` (the engine's own split: `n == 1` and `c > 0`), otherwise a *prefill*
(a prompt, a chunk of one, or a recompute).
Its attention work is n·c + n²/2 query-key pairs; `sum_prefill_sq` counts n² + 2·n·c per prefill,
which is l² for a fresh prompt of l tokens, so DistServe's Σl² term carries over to chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

from foundry.serve.policies.base import SchedulerOutput


@dataclass(slots=True)
class BatchFeatures:  # (not frozen: one is built per simulated step, and a frozen __init__ costs ~3x)
    num_prefill_seqs: int = 0
    sum_prefill_tokens: int = 0  # Σ n over prefills
    sum_prefill_sq: int = 0  # Σ (n² + 2·n·c) over prefills
    num_decode_seqs: int = 0
    sum_decode_context: int = 0  # Σ (c + 1) over decodes: keys each decode attends to

    @property
    def is_empty(self) -> bool:
        return self.num_prefill_seqs == 0 and self.num_decode_seqs == 0

    def as_list(self) -> list[int]:
        return [self.num_prefill_seqs, self.sum_prefill_tokens, self.sum_prefill_sq, self.num_decode_seqs,
                self.sum_decode_context]


def batch_features(decision: SchedulerOutput) -> BatchFeatures:
    np_ = sp = sq = nd = sd = 0
    for item in decision.scheduled:
        n, c = item.num_tokens, item.seq.num_computed_tokens
        if n == 1 and c > 0:  # ScheduledRequest.is_decode, inlined: this loop runs once per token
            nd += 1
            sd += c + 1
        else:
            np_ += 1
            sp += n
            sq += n * n + 2 * n * c
    return BatchFeatures(np_, sp, sq, nd, sd)


def prefill_features(prompt_len: int) -> BatchFeatures:
    """One fresh prompt alone in a step."""
    return BatchFeatures(1, prompt_len, prompt_len * prompt_len, 0, 0)


def decode_features(batch_size: int, context_len: int) -> BatchFeatures:
    """`batch_size` decodes, each attending to `context_len` keys."""
    return BatchFeatures(0, 0, 0, batch_size, batch_size * context_len)
