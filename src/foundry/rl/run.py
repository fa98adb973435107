"""One RL run end to end: SFT warm-up (or a saved policy) -> held-out evaluation -> RL iterations on Ray
-> held-out evaluation -> a checkpoint. What `foundry rl train` and the benchmark call."""

from __future__ import annotations

import json
import pickle
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
from foundry.rl.ranker import LengthRanker
from foundry.rl.rollout import RolloutWorker
from foundry.rl.samples import Group
from foundry.rl.sft import sft
from foundry.rl.tasks import make_task
from foundry.rl.trainer import clone_weights


@dataclass
class RunResult:
    config: RLConfig
    records: list[StepRecord]
    eval_before: dict[str, float]
    eval_after: dict[str, float]
    wall_s: float  # the RL iterations only (no SFT, no evaluation; a resumed run adds its earlier part)
    weights: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    new_records: int = 0  # how many of `records` this call ran (the rest came with a resume)
    restarts: int = 0  # rollout workers that died and were restarted
    regenerated: int = 0  # prompts generated again because their worker died

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
    torch.save({"model_config": _config_dict(cfg), "weights": weights, "info": info}, path)


def load_policy(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """A policy saved by `save_policy` (tensors and plain values only: loaded with weights_only=True)."""
    try:
        data = torch.load(path, weights_only=True)
        return ModelConfig(**data["model_config"]), data["weights"]
    except (OSError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        why = str(e).splitlines()[0]
        raise ValueError(f"init: {path} is not a policy saved by foundry rl ({why})") from None


def evaluate(cfg: ModelConfig, weights: dict[str, torch.Tensor], config: RLConfig) -> dict[str, float]:
    """Greedy answers to the held-out prompts (in this process, one thread)."""
    threads = torch.get_num_threads()
    worker = RolloutWorker(-1, cfg, weights, config.task, config.max_batch, 1, config.seed,
                           config.max_new_tokens)
    torch.set_num_threads(threads)
    return worker.evaluate(held_out_prompts(config.task, config.seed, config.eval_prompts))


def train(config: RLConfig, cfg: ModelConfig, weights: dict[str, torch.Tensor],
          on_step: Callable[[StepRecord], None] | None = None, out: Path | None = None,
          checkpoint_every: int = 0, resume: Checkpoint | None = None,
          on_group: Callable[[Controller, Group], None] | None = None) -> RunResult:
    """RL from `weights` (the SFT policy, also the KL reference), or on from a checkpoint of `out`.

    With `out`, every `checkpoint_every` steps and at the end the trainer's state goes to
    `out/trainer.pt` and the run so far to `out/run.json` (written to a temporary name, then renamed:
    a kill mid-write leaves the previous checkpoint). `on_group` hears each group as it arrives
    (fault injection in tests)."""
    before = resume.eval_before if resume is not None else evaluate(cfg, weights, config)
    records = list(resume.records) if resume is not None else []
    ranker = None
    if config.ranker:
        ranker = LengthRanker(seed=config.seed, updates_per_batch=config.ranker_updates)
    if ranker is not None and resume is not None and resume.ranker_state is not None:
        ranker.load_state_dict(resume.ranker_state)
    controller = Controller(config, cfg, weights, ranker, None if resume is None else resume.trainer_state)

    def save(state: dict[str, Any]) -> None:
        assert out is not None
        save_checkpoint(out, config, cfg, weights, state, None if ranker is None else ranker.state_dict(),
                        records, before)

    def step_done(record: StepRecord) -> None:
        records.append(record)
        if out is not None and checkpoint_every and (record.step + 1) % checkpoint_every == 0:
            save(controller.checkpoint())
        if on_step is not None:
            on_step(record)

    try:
        start = time.monotonic()
        controller.run(step_done, on_group)
        wall = time.monotonic() - start
        state = controller.checkpoint()
    finally:
        controller.shutdown()
    if out is not None:
        save(state)
    run = records[len(resume.records) if resume is not None else 0:]
    wall_before = resume.wall_s if resume is not None else 0.0
    return RunResult(config, records, before, evaluate(cfg, state["model"], config), wall + wall_before,
                     state["model"], new_records=len(run), restarts=controller.restarts,
                     regenerated=controller.regenerated)


@dataclass
class Checkpoint:
    config: RLConfig
    model_config: ModelConfig
    initial_weights: dict[str, torch.Tensor]
    trainer_state: dict[str, Any]
    ranker_state: dict[str, Any] | None
    records: list[StepRecord]
    eval_before: dict[str, float]
    wall_s: float


def save_checkpoint(out: Path, config: RLConfig, cfg: ModelConfig, initial: dict[str, torch.Tensor],
                    state: dict[str, Any], ranker: dict[str, Any] | None, records: list[StepRecord],
                    before: dict[str, float]) -> None:
    """The trainer's, the ranker's and the data's state (the next batch is `len(records)`: a batch's
    prompts are a function of the seed and its index, so nothing else is needed to go on)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "trainer.pt.tmp"
    torch.save({"state": state, "ranker": ranker, "initial": initial, "model_config": _config_dict(cfg)}, tmp)
    tmp.replace(out / "trainer.pt")
    meta = {"config": config.model_dump(), "eval_before": before, "records": [r.as_dict() for r in records],
            "wall_s": sum(r.iteration_s for r in records)}
    (out / "run.json.tmp").write_text(json.dumps(meta, indent=1))
    (out / "run.json.tmp").replace(out / "run.json")


def load_checkpoint(out: Path, **overrides: Any) -> Checkpoint:
    """A run saved by `train(out=...)`; `overrides` change config fields (e.g. more `steps`)."""
    if not (out / "trainer.pt").is_file() or not (out / "run.json").is_file():
        raise ValueError(f"resume: {out} holds no checkpoint (trainer.pt and run.json)")
    try:
        meta = json.loads((out / "run.json").read_text())
        data = torch.load(out / "trainer.pt", weights_only=True)
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        raise ValueError(f"resume: {out} holds no readable checkpoint ({str(e).splitlines()[0]})") from None
    config = RLConfig(**{**meta["config"], **overrides})
    fields = set(StepRecord.__dataclass_fields__) - {"extra"}
    records = [StepRecord(**{k: v for k, v in r.items() if k in fields},
                          extra={k: v for k, v in r.items() if k not in fields}) for r in meta["records"]]
    return Checkpoint(config, ModelConfig(**data["model_config"]), data["initial"], data["state"],
                      data.get("ranker"), records, meta["eval_before"], meta["wall_s"])


def _config_dict(cfg: ModelConfig) -> dict[str, Any]:
    return {k: v for k, v in cfg.__dict__.items() if k != "extra"}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
