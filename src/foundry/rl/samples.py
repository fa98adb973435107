"""What rollouts hand the trainer: a group of `n` samples of one prompt, each with the engine's
logprob and the weight version of every token. Plain data (it crosses process boundaries)."""

from __future__ import annotations

from dataclasses import dataclass

from foundry.rl.tasks import Prompt


@dataclass
class Sample:
    token_ids: list[int]  # the completion, its EOS included when the policy stopped (it is an action too)
    logprobs: list[float]  # the engine's log p of each token, as sampled (behaviour policy)
    versions: list[int]  # the weight version that produced each token
    text: str
    reward: float
    correct: bool
    finish_reason: str  # "stop" (EOS) or "length" (hit max_new_tokens)
    # the inference stage's results when a rollout worker ran it (RLHFuse's inter-stage fusion); else the
    # trainer computes them: each token's logprob under the reference, and the critic's values (PPO)
    ref_logprobs: list[float] | None = None
    values: list[float] | None = None

    @property
    def oldest_version(self) -> int:
        return min(self.versions)


@dataclass
class Group:
    """All `n` samples of one prompt: GRPO's advantage needs the whole group, so groups are the unit that
    streams (never a partial group)."""

    batch: int  # the iteration whose batch this prompt belongs to
    index: int  # the prompt's position in that batch
    prompt: Prompt
    prompt_ids: list[int]
    samples: list[Sample]
    worker: int = -1  # which rollout worker generated it
    finished_at: float = 0.0  # worker's clock when the group's last sample finished

    @property
    def num_tokens(self) -> int:
        return sum(len(s.token_ids) for s in self.samples)

    @property
    def max_len(self) -> int:
        return max(len(s.token_ids) for s in self.samples)
