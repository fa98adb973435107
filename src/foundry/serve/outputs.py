"""What the engine hands back: per-request outputs, per-step timing records, stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length", "abort"]


@dataclass(slots=True)
class TokenLogprob:
    token_id: int
    logprob: float  # log-softmax of the logits, or of the sampled distribution (EngineConfig.logprobs_mode)
    top: dict[int, float]  # the `logprobs` most likely tokens and their logprobs


@dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    output_token_ids: list[int]  # all so far
    new_token_ids: list[int]  # this step
    text: str  # all emitted text so far (a matched stop string is excluded)
    new_text: str  # delta since the previous output of this request
    logprobs: list[TokenLogprob] | None
    finished: bool
    finish_reason: FinishReason | None
    arrival_time: float
    first_token_time: float | None
    finish_time: float | None
    weight_versions: list[int] = field(default_factory=list)  # weight version that produced each token
    # the logprob of each output token so far (EngineConfig.logprobs_mode); None unless
    # SamplingParams.return_output_logprobs
    output_logprobs: list[float] | None = None


@dataclass(slots=True)
class IterationRecord:
    """One engine step: batch composition and how long it took (for profiling and cost models)."""

    step: int
    start_time: float
    elapsed: float  # whole step, seconds
    execute_time: float  # model forward + sampling, seconds
    num_prefill_tokens: int  # tokens of requests still catching up (prefill, chunk, recompute)
    num_decode_tokens: int
    num_seqs: int
    sum_context_len: int  # total attended context over the batch
    num_swapped_out: int
    num_swapped_in: int
    num_preempted: int


@dataclass
class EngineStats:
    num_waiting: int
    num_running: int
    num_swapped: int
    device_kv_usage: float
    host_kv_usage: float
    num_preemptions: int
    num_swapped_out: int
    num_swapped_in: int
    num_steps: int
    num_finished: int
    num_aborted: int
    weight_version: int = 0  # the version of the weights the next step runs with (LLMEngine.load_weights)
    policy_stats: dict[str, Any] = field(default_factory=dict)  # the policy's own series (Policy.stats())
    prefix_cache_hit_rate: float | None = None  # prompt tokens found cached / looked up (None: caching off)
    num_cached_blocks: int = 0  # device blocks the prefix cache can find by content
    spec_acceptance_rate: float | None = None  # draft tokens kept / proposed (None: no speculation)
    spec_draft_tokens: int = 0  # draft tokens proposed
