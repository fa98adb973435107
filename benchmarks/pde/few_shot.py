"""Few-shot adaptation of PDEformer to a family it never saw (sinus2: sinus0 + two sin/cos terms).

    OMP_NUM_THREADS=1 python benchmarks/pde/few_shot.py                 # full run, ~25 CPU-min
    OMP_NUM_THREADS=1 python benchmarks/pde/few_shot.py --quick   # < 60 s, out/pde/quick/few_shot_quick.*

For N in {10, 100, 1000} training samples of the unseen family (seed 100; test set: 128 samples,
seed 101), three learners get the same samples and the same number of optimizer steps (batch 16):

- finetune: the pretrained PDEformer (``--checkpoint``, default the shipped XS), all weights, fresh
  Adam, constant-then-cosine lr ``--finetune-lr`` without warm-up;
- scratch: the same architecture from random init, lr ``--scratch-lr`` with a short warm-up;
- fno: `foundry.pde.baselines.train_baseline("fno", ...)` (IC -> whole (t, x) grid), the same
  number of optimizer steps (epochs = steps * 16 / N).

Each learner's held-out relative L2 (full 101 x 128 grid, mean over the test set) is recorded every
100 steps of 400; the final value (last step, not the best: the test set chooses nothing) goes in the table.
Writes ``few_shot.json``, ``few_shot.png`` (one panel per N) and ``few_shot.md`` into ``--fig-dir``
(docs/figures/pde); ``--quick`` writes ``few_shot_quick.*`` into the ignored out/pde/quick, so a quick
run never overwrites the committed results. ``--fno-only`` adds FNO to an existing ``few_shot.json``
(same data, steps and sizes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from foundry.pde.checkpoint import read_checkpoint
from foundry.pde.data.dataset import PDEDataset
from foundry.pde.data.generate import GenerateConfig
from foundry.pde.data.sinus_trig import FAMILY, generate_trig
from foundry.pde.inference import default_checkpoint, load_model
from foundry.pde.models.pdeformer import PRESETS, PDEformer, preset_name
from foundry.pde.training.config import TrainConfig
from foundry.pde.training.evaluate import evaluate
from foundry.pde.training.train import read_log, train

BATCH = 16
FIGURES = Path("docs/figures/pde")  # committed results: only a full run writes here
QUICK_FIGURES = Path("out/pde/quick")  # ignored


@dataclass(frozen=True)
class Setting:
    """What one run of the benchmark does (the full run's defaults, or --quick's tiny ones)."""

    sizes: tuple[int, ...]
    num_test: int
    steps: int
    eval_every: int
    num_query_points: int
    data: GenerateConfig  # grid and solver settings; num_samples/seed are set per file
    fno_max_minutes: float


FULL = Setting((10, 100, 1000), 128, 400, 100, 2048, GenerateConfig(), 3.0)
QUICK = Setting((4, 8), 4, 6, 3, 256, GenerateConfig(num_t=26, dt=1e-3, chunk_size=16), 0.2)


def model_size_of(checkpoint: Path) -> str:
    """The preset name whose configuration the checkpoint holds."""
    config = read_checkpoint(checkpoint)["model_config"]
    name = preset_name(config)
    if name is not None:
        return name
    raise ValueError(f"{checkpoint} holds a model that matches no preset ({sorted(PRESETS)})")


def make_data(setting: Setting, data_dir: Path) -> tuple[Path, Path]:
    """Train file (max N samples, seed 100) and test file (seed 101); reused if already there."""
    base = {k: getattr(setting.data, k) for k in ("num_x", "num_t", "dt", "chunk_size")}
    train_file, test_file = data_dir / f"{FAMILY}_train_s100.h5", data_dir / f"{FAMILY}_test_s101.h5"
    generate_trig(
        GenerateConfig(num_samples=max(setting.sizes), seed=100, **base), train_file, progress=False
    )
    generate_trig(GenerateConfig(num_samples=setting.num_test, seed=101, **base), test_file, progress=False)
    return train_file, test_file


def curve_from_log(log: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["test_rel_l2"]) for r in read_log(log) if r.get("test_rel_l2") is not None]


@dataclass(frozen=True)
class Learner:
    """A PDEformer training recipe: finetuning (``init_from`` set) or training from scratch."""

    name: str
    lr: float
    warmup_steps: int
    init_from: Path | None
    start_rel_l2: float  # held-out rel-L2 before any step (the curve's step 0)


def run_pdeformer(
    learner: Learner, n: int, setting: Setting, files: tuple[Path, Path], run_dir: Path, size: str
) -> dict:
    name = learner.name
    out = run_dir / f"{name}_n{n}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, never a resume of an old one
    cfg = TrainConfig(
        train_data=files[0],
        test_data=files[1],
        out_dir=out,
        model_size=size,
        batch_size=BATCH,
        num_query_points=setting.num_query_points,
        lr=learner.lr,
        warmup_steps=learner.warmup_steps,
        max_steps=setting.steps,
        eval_every=setting.eval_every,
        log_every=setting.eval_every,
        eval_samples=setting.num_test,
        train_limit=n,
        init_from=learner.init_from,
        device="cpu",
        resume=False,
    )
    start = time.time()
    train(cfg)
    seconds = time.time() - start
    curve = [(0, learner.start_rel_l2), *curve_from_log(out / "log.jsonl")]
    print(f"  {name:8s} N={n:5d}: rel-L2 {curve[-1][1]:.4f} after {setting.steps} steps ({seconds:.0f} s)")
    return {"curve": curve, "final": curve[-1][1], "seconds": seconds}


def run_fno(n: int, setting: Setting, files: tuple[Path, Path]) -> dict | None:
    try:
        from foundry.pde.baselines import train_baseline
    except ImportError as e:  # the baselines part may not be installed in this checkout yet
        print(f"  fno      N={n:5d}: skipped ({e})")
        return None
    steps_per_epoch = math.ceil(n / BATCH)
    epochs = max(1, round(setting.steps / steps_per_epoch))
    res = train_baseline(
        "fno",
        files[0],
        files[1],
        n,
        epochs=epochs,
        max_minutes=setting.fno_max_minutes,
        batch_size=BATCH,
        seed=0,
        eval_every=max(1, round(setting.eval_every / steps_per_epoch)),
    )
    curve = [(int(epoch) * steps_per_epoch, float(rel)) for epoch, rel in res.curve]
    print(
        f"  fno      N={n:5d}: rel-L2 {res.test_rel_l2:.4f}, {res.epochs} epochs ({res.train_seconds:.0f} s)"
    )
    return {
        "curve": curve,
        "final": float(res.test_rel_l2),
        "seconds": float(res.train_seconds),
        "epochs_requested": epochs,
        "epochs": int(res.epochs),  # fewer when max_minutes ran out
        "steps": int(res.epochs) * steps_per_epoch,
        "num_params": int(res.num_params),
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(n) for n in results["runs"]]
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.6), sharey=True, squeeze=False)
    styles = {"finetune": "C0", "scratch": "C1", "fno": "C2"}
    for ax, n in zip(axes[0], sizes, strict=True):
        for name, res in results["runs"][str(n)].items():
            if res is not None:
                steps, rel = zip(*res["curve"], strict=True)
                ax.plot(steps, rel, marker="o", ms=3, color=styles[name], label=name)
        ax.axhline(results["zero_shot"], color="gray", ls="--", lw=1, label="zero-shot")
        ax.set_title(f"N = {n} training samples")
        ax.set_xlabel("optimizer step (batch 16)")
        ax.set_yscale("log")  # an untrained model starts near 3-4, the interesting range is below 1
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"held-out rel-L2 ({results['num_test']} PDEs)")
    axes[0][0].legend()
    fig.suptitle(f"few-shot on the unseen {FAMILY} family (checkpoint: {results['checkpoint_name']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(results: dict) -> str:
    lines = [
        f"| N | finetuned PDEformer-{results['model_size']} | same from scratch | FNO |",
        "|---|---|---|---|",
    ]
    for n, runs in results["runs"].items():
        cells = [f"{runs[k]['final']:.4f}" if runs.get(k) else "n/a" for k in ("finetune", "scratch", "fno")]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append(f"| zero-shot | {results['zero_shot']:.4f} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="pretrained model [the shipped XS]")
    ap.add_argument("--quick", action="store_true", help="tiny data and few steps (< 60 s), for CI")
    ap.add_argument("--out-dir", type=Path, default=Path("out/pde/few_shot"), help="data and runs")
    ap.add_argument(
        "--fig-dir", type=Path, default=None, help=f"json, png, md [{FIGURES}; --quick: {QUICK_FIGURES}]"
    )
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per run [400]")
    ap.add_argument("--finetune-lr", type=float, default=3e-4)
    ap.add_argument("--scratch-lr", type=float, default=1e-3)
    ap.add_argument("--scratch-warmup", type=int, default=20)
    ap.add_argument("--no-fno", action="store_true", help="skip the FNO baseline")
    ap.add_argument(
        "--fno-only", action="store_true", help="run only FNO, adding it to --fig-dir's few_shot.json"
    )
    args = ap.parse_args(argv)
    if args.fig_dir is None:
        args.fig_dir = QUICK_FIGURES if args.quick else FIGURES
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    setting = QUICK if args.quick else FULL
    if args.steps is not None:
        if args.steps < 1:
            ap.error("--steps must be >= 1")
        setting = replace(setting, steps=args.steps)
    checkpoint = args.checkpoint if args.checkpoint is not None else default_checkpoint()
    try:
        size = model_size_of(checkpoint)
    except (FileNotFoundError, ValueError) as e:
        ap.error(f"--checkpoint: {e}")
    t0, c0 = time.time(), time.process_time()

    files = make_data(setting, args.out_dir / ("quick" if args.quick else "data"))
    data_seconds = time.time() - t0
    if args.fno_only:
        return add_fno(args.fig_dir, setting, files, args.quick)
    test = PDEDataset(files[1], num_mod=PRESETS[size].num_mod)
    model, _ = load_model(checkpoint)
    zero_shot = float(evaluate(model, test).mean())
    torch.manual_seed(0)  # what train() builds for seed 0 before its first step
    untrained = float(evaluate(PDEformer(PRESETS[size]), test).mean())
    print(f"data {data_seconds:.0f} s; zero-shot rel-L2 {zero_shot:.4f}, untrained {untrained:.4f}")

    learners = (
        Learner("finetune", args.finetune_lr, 0, checkpoint, zero_shot),
        Learner("scratch", args.scratch_lr, args.scratch_warmup, None, untrained),
    )
    runs: dict[str, dict] = {}
    run_dir = args.out_dir / ("quick_runs" if args.quick else "runs")
    for n in setting.sizes:
        runs[str(n)] = {
            learner.name: run_pdeformer(learner, n, setting, files, run_dir, size) for learner in learners
        }
        runs[str(n)]["fno"] = None if args.no_fno else run_fno(n, setting, files)
    results = {
        "family": FAMILY,
        "checkpoint": str(checkpoint),
        "checkpoint_name": checkpoint.name,
        "model_size": size,
        "quick": args.quick,
        "num_test": len(test),
        "steps": setting.steps,
        "batch_size": BATCH,
        "num_query_points": setting.num_query_points,
        "finetune_lr": args.finetune_lr,
        "scratch_lr": args.scratch_lr,
        "scratch_warmup": args.scratch_warmup,
        "zero_shot": zero_shot,
        "untrained": untrained,
        "runs": runs,
        "data_seconds": data_seconds,
        "wall_seconds": time.time() - t0,
        "cpu_seconds_main_process": time.process_time() - c0,
        "load_average_end": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
    }
    write_outputs(results, args.fig_dir)
    return results


def stem(quick: bool) -> str:
    """Output file stem: a quick run's names differ, so it can never replace a full run's files."""
    return "few_shot_quick" if quick else "few_shot"


def write_outputs(results: dict, fig_dir: Path) -> None:
    fig_dir.mkdir(parents=True, exist_ok=True)
    name = stem(results["quick"])
    (fig_dir / f"{name}.json").write_text(json.dumps(results, indent=1))
    (fig_dir / f"{name}.md").write_text(table(results) + "\n")
    plot(results, fig_dir / f"{name}.png")
    print(table(results))
    print(f"wall {results['wall_seconds']:.0f} s; wrote {fig_dir}/{name}.{{json,md,png}}")


def add_fno(fig_dir: Path, setting: Setting, files: tuple[Path, Path], quick: bool) -> dict:
    """Run FNO alone on the same data and settings and add it to an earlier run's results."""
    path = fig_dir / f"{stem(quick)}.json"
    if not path.exists():
        raise SystemExit(f"--fno-only: {path} does not exist; run without --fno-only first")
    results = json.loads(path.read_text())
    if results["steps"] != setting.steps or [int(n) for n in results["runs"]] != list(setting.sizes):
        raise SystemExit(f"--fno-only: {path} was made with other steps or sizes")
    start = time.time()
    for n in setting.sizes:
        results["runs"][str(n)]["fno"] = run_fno(n, setting, files)
    results["fno_wall_seconds"] = time.time() - start
    write_outputs(results, fig_dir)
    return results


if __name__ == "__main__":
    main()
