"""`foundry rl`: RL post-training on the engine (train, plot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from foundry.config_cli import config_options
from foundry.rl.config import RLConfig

app = typer.Typer(help="RL post-training on foundry's engine: StreamRL's modes (sync, stream, async).",
                  no_args_is_help=True)

TRAIN_HELP = """Post-train a small policy with RL on a verifiable task.

Starts from an SFT warm-up (or --init), evaluates on held-out prompts before and after, and prints one
line per step; --log writes the same as JSONL, --tensorboard as TensorBoard scalars."""


@app.command("train", help=TRAIN_HELP)
@config_options(RLConfig, param="config", passthrough=["steps"])
def train_cmd(
    config: Any,
    steps: int | None = None,
    out: Annotated[Path | None, typer.Option(
        help="Checkpoint directory (trainer.pt, run.json, policy.pt).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run checkpointed in --out (--steps may raise "
                                              "its step count).")] = False,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0: only at the end).",
                                                  min=0)] = 0,
    init: Annotated[Path | None, typer.Option(help="Start from this saved policy instead of an SFT "
                                                   "warm-up.")] = None,
    log: Annotated[Path | None, typer.Option(help="Write one JSON object per step to this file.")] = None,
    tensorboard: Annotated[Path | None, typer.Option(
        help="Write TensorBoard scalars to this directory.")] = None,
) -> None:
    from foundry.rl.run import initial_policy, load_checkpoint, load_policy, save_policy, train

    checkpoint = None
    if resume:
        if out is None:
            raise typer.BadParameter("--resume needs --out (the run's checkpoint directory)",
                                     param_hint="--out")
        try:
            checkpoint = load_checkpoint(out, **({} if steps is None else {"steps": steps}))
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--out") from None
        config, cfg, weights = checkpoint.config, checkpoint.model_config, checkpoint.initial_weights
    elif init is not None:
        try:
            cfg, weights = load_policy(init)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--init") from None
    else:
        cfg, weights = initial_policy(config, log=lambda m: typer.echo(m, err=True))
    logger = StepLogger(config, log, tensorboard, append=resume)
    with logger:
        result = train(config, cfg, weights, logger, out=out, checkpoint_every=checkpoint_every,
                       resume=checkpoint)
    summary = result.summary()
    typer.echo(json.dumps(summary))
    if out is not None:
        save_policy(out / "policy.pt", cfg, result.weights, summary)


class StepLogger:
    """Each step: a line on the live display, a JSON line (`--log`), TensorBoard scalars (`--tensorboard`)."""

    def __init__(self, config: Any, log: Path | None, tensorboard: Path | None, append: bool = False) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.config = config
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
        self.file = None if log is None else log.open("a" if append else "w")
        self.writer = None
        if tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(tensorboard))
        self.progress = Progress(
            TextColumn(f"[bold]{config.mode}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("reward {task.fields[reward]}  {task.fields[sps]} samples/s  staleness "
                       "{task.fields[stale]}  idle: trainer {task.fields[t_idle]} "
                       "rollout {task.fields[r_idle]}"),
            TimeElapsedColumn(), console=Console(stderr=True))
        self.task = self.progress.add_task("rl", total=config.steps, reward="-", sps="-", stale="-",
                                           t_idle="-", r_idle="-")

    def __enter__(self) -> StepLogger:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()

    def __call__(self, record: Any) -> None:
        row = record.as_dict()
        self.progress.update(self.task, completed=record.step + 1, reward=f"{record.reward:.3f}",
                             sps=f"{record.samples_per_s:.1f}", stale=record.staleness_max,
                             t_idle=f"{record.trainer_idle:.0%}", r_idle=f"{record.rollout_idle:.0%}")
        if self.file is not None:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        if self.writer is not None:
            for key in ("reward", "correct", "samples_per_s", "staleness_max", "staleness_mean",
                        "trainer_idle", "rollout_idle", "mean_len", "loss", "kl", "iteration_s", "gen_s",
                        "train_busy_s"):
                self.writer.add_scalar(f"rl/{key}", row[key], record.step)
            self.writer.flush()


@app.command("plot")
def plot_cmd(
    logs: Annotated[list[Path], typer.Argument(
        help="JSONL logs from `foundry rl train --log` (one per run).")],
    out: Annotated[Path, typer.Option(help="Figure file (png, pdf, svg).")] = Path("rl.png"),
) -> None:
    """Learning and throughput curves of one or more runs, side by side."""
    from foundry.rl.plot import plot_runs

    runs = {}
    for path in logs:
        try:
            runs[path.stem] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError) as e:
            raise typer.BadParameter(f"{path}: {e}", param_hint="LOGS") from None
        if not runs[path.stem] or not all("step" in r and "reward" in r for r in runs[path.stem]):
            raise typer.BadParameter(f"{path}: not a `foundry rl train --log` file", param_hint="LOGS")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_runs(runs, out)
    typer.echo(f"wrote {out}")
