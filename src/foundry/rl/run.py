"""One RL run end to end: SFT warm-up (or a saved policy) -> held-out evaluation -> RL iterations on Ray
-> held-out evaluation -> a checkpoint. What `foundry rl train` and the benchmark call."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from foundry.llm.config import ModelConfig
from foundry.rl.config import RLConfig
from foundry.rl.controller import Controller, StepRecord, held_out_prompts
from foundry.rl.model import build_policy, policy_config, policy_tokenizer
from foundry.rl.rollout import RolloutWorker
from foundry.rl.sft import sft
from foundry.rl.tasks import make_task
from foundry.rl.trainer import clone_weights


@dataclass
class RunResult:
    config: RLConfig
    records: list[StepRecord]
    eval_before: dict[str, float]
    eval_after: dict[str, float]
    wall_s: float  # the RL iterations only (no SFT, no evaluation)
    weights: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return sum(r.samples for r in self.records) / self.wall_s

    def summary(self) -> dict[str, Any]:
        return {"mode": self.config.mode, "steps": len(self.records), "samples_per_s": self.samples_per_s,
                "wall_s": self.wall_s, "reward_before": self.eval_before["reward"],
                "reward": self.eval_after["reward"], "exact_before": self.eval_before["exact"],
                "exact": self.eval_after["exact"],
                "staleness_max": max((r.staleness_max for r in self.records), default=0)}


def initial_policy(config: RLConfig, log: Callable[[str], None] = print
                   ) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The SFT-warmed policy the RL run starts from (deterministic in the config's seed)."""
    torch.manual_seed(config.seed)
    tokenizer = policy_tokenizer()
    cfg = policy_config(tokenizer, config.hidden, config.layers)
    model = build_policy(cfg, config.seed)
    if config.sft_steps:
        start = time.monotonic()
        losses = sft(model, tokenizer, make_task(config.task), config.sft_steps, config.sft_batch,
                     config.sft_lr, config.seed)
        log(f"SFT: {config.sft_steps} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
            f"{time.monotonic() - start:.0f} s")
    return cfg, clone_weights(model)


def save_policy(path: Path, cfg: ModelConfig, weights: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    torch.save({"model_config": cfg.__dict__ | {"extra": {}}, "weights": weights, "info": info}, path)


def load_policy(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """A policy saved by `save_policy` (tensors and plain values only: loaded with weights_only=True)."""
    try:
        data = torch.load(path, weights_only=True)
        return ModelConfig(**data["model_config"]), data["weights"]
    except (OSError, KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"init: {path} is not a policy saved by foundry rl ({e})") from None


def evaluate(cfg: ModelConfig, weights: dict[str, torch.Tensor], config: RLConfig) -> dict[str, float]:
    """Greedy answers to the held-out prompts (in this process, one thread)."""
    threads = torch.get_num_threads()
    worker = RolloutWorker(-1, cfg, weights, config.task, config.max_batch, 1, config.seed)
    torch.set_num_threads(threads)
    return worker.evaluate(held_out_prompts(config.task, config.seed, config.eval_prompts))


def train(config: RLConfig, cfg: ModelConfig, weights: dict[str, torch.Tensor],
          on_step: Callable[[StepRecord], None] | None = None,
          order: Callable[..., list[int]] | None = None) -> RunResult:
    before = evaluate(cfg, weights, config)
    controller = Controller(config, cfg, weights, order)
    try:
        start = time.monotonic()
        records = controller.run(on_step)
        wall = time.monotonic() - start
        final = controller.final_weights()
    finally:
        controller.shutdown()
    return RunResult(config, records, before, evaluate(cfg, final, config), wall, final)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
