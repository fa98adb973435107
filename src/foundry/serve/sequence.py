"""Request state: a plain dataclass the policies, the block manager and the simulator all read.

No tensors here. A request's progress is one number, `num_computed_tokens` (tokens whose KV is in
the cache), catching up with `num_tokens` (prompt + output so far). A fresh prompt, a chunked
prefill, a recompute after preemption and a decode step are the same thing: compute the tokens
still behind. When the count catches up, the step's last logits give the next token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from foundry.serve.sampling_params import SamplingParams


class KVLocation(Enum):
    NONE = "none"  # nothing cached (new, or dropped for recompute)
    DEVICE = "device"
    HOST = "host"  # swapped out


# The members as module globals, for per-token hot paths (policies, block manager, simulator): looking up
# an Enum member costs ~80 ns on CPython 3.11, a global ~10 ns, and these checks run millions of times.
KV_NONE, KV_DEVICE, KV_HOST = KVLocation.NONE, KVLocation.DEVICE, KVLocation.HOST


class SequenceStatus(Enum):
    WAITING = "waiting"
    RUNNING = "running"  # KV on device (in this step's batch or not)
    SWAPPED = "swapped"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams
    arrival_time: float
    output_token_ids: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    kv_location: KVLocation = KVLocation.NONE
    is_finished: bool = False
    finish_reason: str | None = None
    first_token_time: float | None = None
    finish_time: float | None = None
    num_preemptions: int = 0
    weight_versions: list[int] = field(default_factory=list)  # the weight version behind each output token
    output_logprobs: list[float] = field(default_factory=list)  # each output token's, when params ask
    # Policy-owned fields: the engine never reads them.
    priority: int = 0  # e.g. an MLFQ level
    service_time: float = 0.0  # accumulated iteration time while scheduled
    last_scheduled_time: float | None = None
    policy_state: dict[str, Any] = field(default_factory=dict)

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def num_uncomputed_tokens(self) -> int:
        return self.num_tokens - self.num_computed_tokens

    @property
    def max_num_tokens(self) -> int:
        """Prompt plus the most output tokens it may produce."""
        return len(self.prompt_token_ids) + self.params.max_tokens

    @property
    def is_prefilling(self) -> bool:
        """Still computing its prompt (its first output token is not out yet)."""
        return not self.output_token_ids

    @property
    def status(self) -> SequenceStatus:
        if self.is_finished:
            return SequenceStatus.FINISHED
        return {KVLocation.NONE: SequenceStatus.WAITING, KVLocation.DEVICE: SequenceStatus.RUNNING,
                KVLocation.HOST: SequenceStatus.SWAPPED}[self.kv_location]

    def token_ids(self, start: int, end: int) -> list[int]:
        """Tokens [start, end) of prompt + output, without building the whole list."""
        p = len(self.prompt_token_ids)
        if end <= p:
            return self.prompt_token_ids[start:end]
        if start >= p:
            return self.output_token_ids[start - p:end - p]
        return self.prompt_token_ids[start:] + self.output_token_ids[:end - p]
