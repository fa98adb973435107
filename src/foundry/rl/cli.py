"""`foundry rl`: RL post-training on the engine (train, plot) and the fused-pipeline schedule search."""

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


SCHEDULE_HELP = """Search a fused actor/critic pipeline schedule (RLHFuse's intra-stage fusion).

Each option takes ACTOR/CRITIC, as in the RLHFuse/FlexFusion tables: --pp 8/4 is the actor's pipeline
degree (8 stages, one per node, on 8 nodes) and the critic's (4 stages, replicated 8/4 = 2 times on
contiguous node blocks, running in the reverse direction); the critic's degree must divide the actor's.
Runs a greedy start, simulated annealing over adjacent swaps (--budget-s CPU seconds, stops early at the
lower bound), then a memory pass that lowers the peak activation memory without raising the makespan
(--budget-s more, stops early within --memory-cap). Prints the makespan, the sequential 1F1B makespan
(actor 1F1B, then critic 1F1B), the bubble ratio, the lower bound and the peak memory (activations held
on a node: +1 per forward, -1 per backward); exits 1 if the memory cap cannot be met."""


def _pair(text: str, option: str) -> tuple[int, int]:
    parts = text.split("/")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 2 or min(values) <= 0:
        raise typer.BadParameter(f"expected ACTOR/CRITIC positive integers such as 8/4, got {text!r}",
                                 param_hint=option)
    return values  # type: ignore[return-value]


@app.command("schedule", help=SCHEDULE_HELP)
def schedule_cmd(
    pp: Annotated[str, typer.Option(help="Pipeline degrees ACTOR/CRITIC, e.g. 8/4 (critic divides actor).")],
    micro_batches: Annotated[str, typer.Option(help="Micro-batches ACTOR/CRITIC (per critic replica), "
                                                    "e.g. 32/16.")],
    fwd_time: Annotated[str, typer.Option(help="Forward time of one stage ACTOR/CRITIC, integer units, "
                                               "e.g. 5/4.")],
    bwd_time: Annotated[str | None, typer.Option(help="Backward time ACTOR/CRITIC; the model fixes it at "
                                                      "2 x forward (the default).")] = None,
    budget_s: Annotated[float, typer.Option(help="CPU seconds for the annealing, and again for the "
                                                 "memory pass.", min=0)] = 5.0,
    seed: Annotated[int, typer.Option(help="Random seed of both passes.")] = 0,
    memory_cap: Annotated[int | None, typer.Option(help="Most activations a node may hold.", min=1)] = None,
    out: Annotated[Path | None, typer.Option(help="Draw the schedule's Gantt chart here (png, pdf, "
                                                  "svg).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    from foundry.rl.fused import FusedConfig, bubble, check_schedule, search, seq_1f1b_makespan

    pp0, pp1 = _pair(pp, "--pp")
    m0, m1 = _pair(micro_batches, "--micro-batches")
    f0, f1 = _pair(fwd_time, "--fwd-time")
    if bwd_time is not None and _pair(bwd_time, "--bwd-time") != (2 * f0, 2 * f1):
        raise typer.BadParameter(f"the model fixes backward = 2 x forward ({2 * f0}/{2 * f1}), got "
                                 f"{bwd_time!r}", param_hint="--bwd-time")
    try:
        cfg = FusedConfig(pp0, pp1, m0, m1, f0, f1)
    except ValueError as e:
        raise typer.BadParameter(f"{e}, got {pp!r}", param_hint="--pp") from None
    res = search(cfg, budget_s=budget_s, seed=seed, memory_cap=memory_cap, memory_budget_s=budget_s)
    check_schedule(cfg, res.tasks(cfg), memory_cap if res.memory_cap_met else None)
    seq = seq_1f1b_makespan(cfg)
    row = {"makespan": res.makespan, "seq_1f1b_makespan": seq, "speedup": round(seq / res.makespan, 4),
           "bubble": round(res.bubble, 4), "seq_1f1b_bubble": round(bubble(cfg, seq), 4),
           "lower_bound": res.lower_bound, "greedy_makespan": res.greedy_makespan,
           "peak_memory": res.peak_memory, "peak_memory_before_memory_pass": res.sa_peak_memory,
           "memory_cap": memory_cap, "memory_cap_met": res.memory_cap_met, "iterations": res.iterations,
           "memory_iterations": res.memory_iterations, "cpu_s": round(res.cpu_s, 2)}
    if out is not None:
        from foundry.rl.fused.gantt import plot_gantt

        plot_gantt(cfg, res.tasks(cfg), out, title=f"pp {pp}, micro-batches {micro_batches}, forward "
                   f"{fwd_time}: makespan {res.makespan} (seq 1F1B {seq}, bound {res.lower_bound}), "
                   f"peak memory {res.peak_memory}")
    if as_json:
        typer.echo(json.dumps(row))
    else:
        typer.echo(f"makespan {res.makespan}  (greedy {res.greedy_makespan}, lower bound {res.lower_bound})")
        typer.echo(f"seq 1F1B {seq}  speed-up {seq / res.makespan:.2f}x")
        typer.echo(f"bubble {res.bubble:.2%}  (seq 1F1B {bubble(cfg, seq):.2%})")
        typer.echo(f"peak memory {res.peak_memory}  (before the memory pass {res.sa_peak_memory})")
        typer.echo(f"{res.iterations} + {res.memory_iterations} iterations, {res.cpu_s:.2f} CPU-s")
    if out is not None:
        typer.echo(f"wrote {out}", err=True)
    if res.memory_cap_met is False:
        typer.echo(f"Error: --memory-cap {memory_cap} cannot be met at makespan {res.makespan} "
                   f"(lowest peak found {res.peak_memory})", err=True)
        raise typer.Exit(1)
