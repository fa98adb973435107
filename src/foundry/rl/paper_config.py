"""The paper-scale RL iteration's constants, and its heavy-tailed batches of samples. Torch-free.

Every constant is a field of `PaperSimConfig`, with its source or the word "assumed";
`docs/rl-simulation.md` lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class PaperSimConfig(BaseModel):
    """One RL iteration's workload, cluster and cost constants."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field("qwen2.5-7b", description="a `foundry.sim.hardware` model (Qwen2.5 shapes)")
    num_gpus: int = Field(16, ge=2, description="one pool of GPUs (homogeneous runs)")
    gen_gpu: str = Field("h800", description="GPU that generates")
    train_gpu: str = Field("h800", description="GPU that trains")
    gen_tp: int = Field(1, ge=1, description="tensor parallelism of a generation instance")
    num_prompts: int = Field(256, ge=1, description="prompts per iteration (assumed)")
    samples_per_prompt: int = Field(8, ge=1, description="GRPO group size n (assumed)")
    prompt_len: int = Field(512, ge=1, description="prompt tokens (assumed)")
    max_len: int = Field(20000, ge=1, description="output cap: the 5K/10K/20K datasets (reference §2.5)")
    median_frac: float = Field(0.0625, gt=0, le=1, description="median output = max_len x this (assumed)")
    sigma_prompt: float = Field(0.9, ge=0, description="log-normal sigma of a prompt's difficulty (assumed)")
    sigma_sample: float = Field(0.45, ge=0, description="log-normal sigma within a group (assumed)")
    ranker_noise: float = Field(0.12, ge=0, description="log-noise of the ranker's score (0: it ranks "
                                "prompts perfectly); 0.12 gives recall@20% near the paper's 0.87 (§2.4)")
    oracle_ranker: bool = Field(False, description="dispatch on the true lengths (no history): an upper "
                                "bound for skew-aware dispatch")
    alpha: float = Field(0.2, ge=0, le=1, description="long-tail fraction (Algorithm 2, reference §2.4)")
    max_batch: int = Field(256, ge=1, description="most running sequences per instance (assumed)")
    max_num_batched_tokens: int = Field(8192, ge=1, description="tokens per engine step (assumed)")
    flops_per_token_param: float = Field(18.0, gt=0, description="PPO: actor + critic train (6+6), "
                                         "ref, old-logprob and value forwards (2+2+2) (reference §6)")
    mfu: float = Field(0.4, gt=0, le=1, description="training MFU (assumed; Megatron-class)")
    trained_models: int = Field(2, ge=1, description="models with optimizer state (PPO: actor, critic)")
    state_bytes_per_param: float = Field(16.0, gt=0, description="bf16 weight + grad, fp32 master + Adam")
    micro_batch_samples: int = Field(64, ge=1, description="streamed training micro-batch (assumed)")
    weight_sync_bandwidth: float = Field(50e9, gt=0, description="bytes/s of the weight broadcast: one "
                                         "400 Gb/s NIC (assumed)")
    seed: int = 0

    @property
    def num_samples(self) -> int:
        return self.num_prompts * self.samples_per_prompt

    @property
    def micro_batch_groups(self) -> int:
        """The streamed micro-batch in whole groups (a group is streamed whole)."""
        return max(1, math.ceil(self.micro_batch_samples / self.samples_per_prompt))


@dataclass(frozen=True)
class Batch:
    """One iteration's samples: true lengths, group ids, and the ranker's per-sample score."""

    lengths: np.ndarray
    groups: np.ndarray
    scores: np.ndarray

    def recall(self, alpha: float) -> float:
        """Recall of the true top-α groups (by mean length) among the ranker's top α."""
        num = len(np.unique(self.groups))
        k = max(1, math.ceil(alpha * num))
        true = np.bincount(self.groups, weights=self.lengths) / np.bincount(self.groups)
        pred = np.bincount(self.groups, weights=self.scores) / np.bincount(self.groups)
        return len(set(np.argsort(-true)[:k]) & set(np.argsort(-pred)[:k])) / k


def draw_batch(cfg: PaperSimConfig, seed: int) -> Batch:
    """Heavy-tailed lengths: log L = log(median) + σ_p·z_prompt + σ_s·z_sample, truncated at max_len
    (a truncated response stops at the cap). The ranker sees σ_p·z_prompt plus noise: it ranks prompts."""
    rng = np.random.default_rng(seed)
    n, m = cfg.num_prompts, cfg.samples_per_prompt
    z_prompt = np.repeat(rng.standard_normal(n), m)
    z_sample = rng.standard_normal(n * m)
    median = cfg.median_frac * cfg.max_len
    lengths = np.clip(np.ceil(median * np.exp(cfg.sigma_prompt * z_prompt + cfg.sigma_sample * z_sample)),
                      1, cfg.max_len).astype(np.int64)
    noise = np.repeat(rng.standard_normal(n), m) * cfg.ranker_noise
    scores = median * np.exp(cfg.sigma_prompt * z_prompt + noise)
    return Batch(lengths, np.repeat(np.arange(n), m), scores)
