"""RLConfig: one run of RL post-training (task, algorithm, mode, sizes), validated, with per-mode defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class GRPOConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    clip: float = Field(0.2, gt=0, description="PPO clip range eps_clip")
    kl_coef: float = Field(0.02, ge=0, description="beta, the weight of the KL penalty to the reference")
    scale_rewards: bool = Field(True, description="divide advantages by the group's reward std")
    eps: float = Field(1e-6, gt=0, description="added to the std")
    behaviour_logprobs: Literal["recompute", "engine"] = Field(
        "recompute", description="a stale token's behaviour logprob (the ratio's denominator): recomputed "
        "by the trainer under the kept weights of the version that sampled it (verl's default; one more "
        "forward per stale sample), or the engine's, returned with each sampled token (equal to 1e-5 here); "
        "on-policy tokens use the trainer's own forward either way")


class PPOConfig(BaseModel):
    """The critic's part of PPO (the policy loss is GRPO's clipped surrogate with these advantages)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gamma: float = Field(1.0, gt=0, le=1, description="discount")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda")
    vf_coef: float = Field(0.5, ge=0, description="weight of the value loss")
    value_clip: float = Field(0.2, gt=0, description="clip range of the value update")
    critic_lr: float = Field(1e-3, gt=0, description="critic learning rate")


Mode = Literal["sync", "sync-disagg", "stream", "async"]
MODES: dict[str, str] = {
    "sync": "colocated, batch-synchronous (verl's default): all workers generate, then the trainer trains "
            "on every core",
    "sync-disagg": "disaggregated, batch-synchronous: one core generates, one trains, in turn",
    "stream": "disaggregated, streamed (StreamRL-Sync): groups train as they finish; one exact step per "
              "batch",
    "async": "disaggregated, streamed, one-step asynchronous (StreamRL-Async): batch k+1 generates while "
             "batch k trains",
}


class RLConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = Field("rle", description="the task: rle (run-length decoding, heavy-tailed lengths), "
                      "rle-long (a longer tail: generation-heavy) or reverse (the control)")
    algo: Literal["grpo", "ppo"] = Field("grpo", description="grpo (group-relative advantages) or ppo (a "
                                         "critic and GAE)")
    mode: Mode = Field("sync", description="how generation and training share the "
                      "machine: " + "; ".join(f"{k}: {v}" for k, v in MODES.items()))
    steps: int = Field(20, ge=1, description="RL iterations (one optimizer step each)")
    prompts_per_step: int = Field(16, ge=1, description="prompts per batch")
    n: int = Field(8, ge=2, description="samples per prompt (a GRPO group)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of rollouts")
    lr: float = Field(5e-4, gt=0, description="RL learning rate")
    clip: float = Field(0.2, gt=0, description="PPO clip range")
    kl_coef: float = Field(0.02, ge=0, description="KL penalty to the reference (the SFT policy)")
    behaviour_logprobs: Literal["recompute", "engine"] = Field(
        "recompute", description="stale tokens' behaviour logprobs: recomputed by the trainer under the "
        "sampling version's weights (one more forward; verl's default) or the rollout engine's (free)")
    max_staleness: int | None = Field(None, ge=0, description="trainer version minus a sample's oldest "
                                      "token version, at most (unset: 1 in async, else 0)")
    num_workers: int | None = Field(None, ge=1, description="rollout engine instances (unset: 2 in sync "
                                    "[every core], else 1)")
    trainer_threads: int | None = Field(None, ge=1, description="torch threads of the trainer (unset: 2 in "
                                        "sync [every core], else 1)")
    ranker: bool = Field(True, description="train an output-length ranker online; its predictions order "
                         "admission (longest first) and drive --dispatch")
    ranker_updates: int = Field(4, ge=1, description="ranker optimizer steps per batch (its training runs "
                                "in the controller, on the cores the workers and trainer use)")
    dispatch: Literal["random", "balanced", "skew"] = Field(
        "random", description="how a batch's prompts are split over the rollout workers: random, "
        "length-balanced, or skew-aware (long tails on small-batch workers; StreamRL Algorithm 2)")
    micro_batch_groups: int = Field(4, ge=1, description="groups per trainer micro-batch")
    max_new_tokens: int | None = Field(None, ge=1, le=300, description="generation cap per sample (unset: "
                                       "the task's); a policy that loses count runs on to it")
    max_batch: int = Field(64, ge=1, description="running requests per rollout engine")
    hidden: int = Field(128, ge=16, description="policy width")
    layers: int = Field(4, ge=1, description="policy depth")
    sft_steps: int = Field(600, ge=0, description="SFT warm-up steps before RL")
    sft_batch: int = Field(32, ge=1, description="SFT batch size")
    sft_lr: float = Field(2e-3, gt=0, description="SFT learning rate")
    eval_prompts: int = Field(64, ge=1, description="held-out prompts for the greedy evaluation")
    fusion: Literal["none", "inter", "intra", "both"] = Field(
        "none", description="RLHFuse's stage fusion: inter (generation + inference: below the threshold the "
        "unfinished samples migrate to the workers with most left and the freed workers run the inference "
        "stage), intra (training: the actor's and critic's pipelines fused into one schedule; PPO), both, "
        "or none")
    fusion_threshold: float | None = Field(
        None, ge=0, lt=1, description="R_t: the fraction of the batch's samples still generating at which "
        "inter-stage fusion migrates them (0: the inference stage waits for the last sample, RLHFuse-Base; "
        "unset: chosen each batch by simulating the lengths seen so far)")
    migrate_kv: bool = Field(True, description="migrated samples carry their KV (false: the receiving worker "
                             "recomputes it, as without fast links)")
    pipeline_stages: int = Field(2, ge=1, description="intra-stage fusion: pipeline stages of the actor "
                                 "and the critic (at most --layers)")
    pipeline_micro_batches: int = Field(4, ge=1, description="intra-stage fusion: micro-batches of each "
                                        "model per trainer micro-batch")
    backend: Literal["ray", "local"] = Field("ray", description="actors as Ray processes (one machine or a "
                                             "cluster) or as threads of this process")
    seed: int = Field(0, description="seeds prompts, sampling and initial weights")

    @model_validator(mode="after")
    def _known_task(self) -> RLConfig:
        from foundry.rl.tasks import TASKS
        if self.task not in TASKS:
            raise ValueError(f"task: unknown task {self.task!r}; choose one of {sorted(TASKS)}")
        return self

    @model_validator(mode="after")
    def _fusion_fits(self) -> RLConfig:
        if self.fusion in ("inter", "both"):
            if self.mode != "sync":
                raise ValueError("fusion: inter-stage fusion runs in --mode sync (generation, inference, "
                                 f"training in turn on the same workers), not {self.mode!r}")
            if self.workers < 2:
                raise ValueError("fusion: inter-stage fusion migrates samples between rollout workers: needs "
                                 "--num-workers 2 or more")
        if self.fusion in ("intra", "both"):
            if self.algo != "ppo":
                raise ValueError("fusion: intra-stage fusion fuses the actor's and the critic's training "
                                 "pipelines: needs --algo ppo")
            if self.pipeline_stages > self.layers:
                raise ValueError(f"pipeline_stages: {self.pipeline_stages} stages of a {self.layers}-layer "
                                 "model")
        elif self.fusion_threshold is not None and self.fusion == "none":
            raise ValueError("fusion_threshold: set --fusion inter (or both) to use it")
        return self

    @property
    def inter_fusion(self) -> bool:
        return self.fusion in ("inter", "both")

    @property
    def intra_fusion(self) -> bool:
        return self.fusion in ("intra", "both")

    @property
    def staleness_bound(self) -> int:
        return self.max_staleness if self.max_staleness is not None else int(self.mode == "async")

    @property
    def workers(self) -> int:
        return self.num_workers or (2 if self.mode == "sync" else 1)

    @property
    def threads(self) -> int:
        return self.trainer_threads or (2 if self.mode == "sync" else 1)

    @property
    def streams(self) -> bool:
        return self.mode in ("stream", "async")

    @property
    def colocated(self) -> bool:
        return self.mode == "sync"

    def grpo(self) -> GRPOConfig:
        return GRPOConfig(clip=self.clip, kl_coef=self.kl_coef, behaviour_logprobs=self.behaviour_logprobs)

    def ppo(self) -> PPOConfig | None:
        return PPOConfig() if self.algo == "ppo" else None

    def pipeline(self) -> tuple[int, int] | None:
        """The trainer's fused actor/critic pipeline (stages, micro-batches), with intra-stage fusion."""
        return (self.pipeline_stages, self.pipeline_micro_batches) if self.intra_fusion else None
