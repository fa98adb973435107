"""Few-shot adaptation of PDEformer-2 to a 2-D family it never saw: periodic Sine-Gordon.

    OMP_NUM_THREADS=1 python benchmarks/pde/few_shot2d.py --checkpoint /work/data2d/run/best.pt
    OMP_NUM_THREADS=1 python benchmarks/pde/few_shot2d.py --checkpoint CKPT --quick   # ~1-2 min, 1 core

Family (`foundry.pde.data.sine_gordon2d`): u_t - v = 0, v_t - c2 (u_xx + u_yy) + k sin(u) = 0 on the
periodic unit square, c2 ~ U[0.1, 1], k ~ U[0.5, 2], u0 a GRF or sine sum, v0 = 0; u stored on
32 x 32 at 21 frames of [0, 1]. Training file: seed 100 (the first n members are used); test
file: a fixed 64 members, seed 101 (``--quick``: 16).

For n in {1, 4, 20, 80} training samples, every learner gets the same n samples, the same number
of optimizer steps (``--steps``, default 200) and the same loss (`normalized_rmse`):

- zero-shot (n = 0): the checkpoint as it is;
- finetune: the checkpoint, all weights, fresh Adam, lr ``--finetune-lr`` with a cosine decay, no
  warm-up, batch 16 drawn with replacement from the n samples, ``num_query_points`` random
  (t, x, y) points per sample per step (`foundry.pde.training.train` with ``init_from``);
- fno3d: `baselines.spatial2d.FNO3D` (neuraloperator FNO over (t, x, y), modes 12 per axis capped
  by the grid, width 20, 4 layers; u0 tiled over t plus t, x, y channels), random init;
- fno2d: `baselines.spatial2d.FNO2DFrames` (neuraloperator FNO over (x, y), modes 12, width 20, 4 layers;
  u0, x, y in, 21 frames out as channels), random init;
- unet: `baselines.spatial2d.UNetFrames` (2-D U-Net over (x, y), u0, x, y in, 21 frames out), random init.

The baselines see u0 and, unless ``--baseline-ic-only``, the coefficients (c2, k) as constant input
channels (the reference baselines' ``input_pde_param``); without them they cannot tell members with
the same u0 apart. They take min(16, n) distinct samples per step on the whole grid, lr
``--baseline-lr`` with a cosine decay. PDEformer reads the equation (with c2, k and sin(u)) and u0
from the graph. The score of every learner is the mean per-sample relative L2 over the test set's
full 21 x 32 x 32 grid after the last step (the test set chooses nothing: no early stopping).

Writes ``--json`` (default ``<out-dir>/few_shot2d[_quick].json``) and, next to it, ``.md`` (table)
and ``.png`` (error vs n); data and runs go in ``--out-dir`` (default out/pde/few_shot2d, ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from foundry.pde.baselines.spatial2d import build_grid_model, train_grid_baseline
from foundry.pde.checkpoint import read_checkpoint
from foundry.pde.data.dataset import PDEDataset
from foundry.pde.data.sine_gordon2d import EQUATIONS, FAMILY, generate_sine_gordon
from foundry.pde.inference import load_model
from foundry.pde.models.pdeformer import PRESETS, preset_name
from foundry.pde.training.config import TrainConfig
from foundry.pde.training.evaluate import evaluate
from foundry.pde.training.train import train

BATCH = 16
LEARNERS = ("finetune", "fno3d", "fno2d", "unet")


@dataclass(frozen=True)
class Setting:
    sizes: tuple[int, ...]
    num_test: int
    steps: int
    num_query_points: int


FULL = Setting((1, 4, 20, 80), 64, 200, 2048)
QUICK = Setting((1, 4, 20, 80), 16, 8, 1024)


def checkpoint_model(path: Path) -> tuple[str, bool]:
    """(preset name, log_scalars) of a 2-D checkpoint."""
    config = read_checkpoint(path)["model_config"]
    name = preset_name(config)
    if name is None or PRESETS[name].num_coords != 3:
        raise ValueError(f"{path} holds no 2-D preset model (got preset {name})")
    return name, bool(config.get("log_scalars", False))


def _rows(path: Path) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return int(f["u"].shape[0]) if f.attrs.get("family") == FAMILY else -1
    except (OSError, KeyError):
        return -1


def make_data(setting: Setting, data_dir: Path) -> tuple[Path, Path]:
    """Train file (max n members, seed 100) and test file (seed 101); reused when already there."""
    files = (data_dir / "sine_gordon_train_s100.h5", data_dir / "sine_gordon_test_s101.h5")
    for path, num, seed in ((files[0], max(setting.sizes), 100), (files[1], setting.num_test, 101)):
        if _rows(path) != num:
            generate_sine_gordon(path, num, seed=seed)
    return files


def load_arrays(path: Path, limit: int | None, device: str) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """u [N, T, G, G], params (c2, k) [N, 2], (t, x, y) as float32 tensors."""
    import h5py

    with h5py.File(path, "r") as f:
        n = f["u"].shape[0] if limit is None else limit
        u = torch.as_tensor(f["u"][:n], dtype=torch.float32, device=device)
        params = torch.as_tensor(np.stack([f["c2"][:n], f["k"][:n]], 1), dtype=torch.float32, device=device)
        coords = tuple(torch.as_tensor(f[a][:], dtype=torch.float32, device=device) for a in ("t", "x", "y"))
    return u, params, coords


def run_finetune(args, setting: Setting, n: int, files, run_dir: Path, size: str, log_scalars: bool) -> dict:
    out = run_dir / f"finetune_n{n}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, never a resume
    cfg = TrainConfig(
        train_data=files[0],
        test_data=None,  # nothing held out chooses: the last weights are scored
        out_dir=out,
        model_size=size,
        log_scalars=log_scalars,
        batch_size=BATCH,
        num_query_points=setting.num_query_points,
        lr=args.finetune_lr,
        warmup_steps=0,
        max_steps=setting.steps,
        log_every=max(1, setting.steps // 4),
        eval_every=setting.steps,
        train_limit=n,
        init_from=args.checkpoint,
        device=args.device,
        resume=False,
        seed=0,
    )
    start = time.time()
    train(cfg)
    seconds = time.time() - start
    model, _ = load_model(out / "last.pt", args.device)
    per = evaluate(model, args.test_data, device=args.device)
    return {
        "final": float(per.mean()),
        "per_sample": per.tolist(),
        "seconds": seconds,
        "steps": setting.steps,
    }


def run_baseline(args, setting: Setting, kind: str, n: int, train_arrays, test_arrays) -> dict:
    u_tr, p_tr, (t, x, y) = train_arrays
    u_te, p_te, _ = test_arrays
    use_params = not args.baseline_ic_only
    torch.manual_seed(0)
    model = build_grid_model(kind, tuple(u_tr.shape[1:]), num_params=2 if use_params else 0).to(args.device)
    res = train_grid_baseline(
        model,
        u_tr[:n],
        u_te,
        t,
        x,
        y,
        setting.steps,
        batch_size=BATCH,
        lr=args.baseline_lr,
        p_train=p_tr[:n] if use_params else None,
        p_test=p_te if use_params else None,
    )
    return {
        "final": res.test_rel_l2,
        "per_sample": res.per_sample,
        "seconds": res.train_seconds,
        "steps": setting.steps,
        "num_params": res.num_params,
        "first_train_loss": res.first_loss,
        "last_train_loss": res.last_loss,
    }


def what_each_saw(results: dict) -> list[str]:
    steps, q = results["steps"], results["num_query_points"]
    coefs = "u0 only (no coefficients)" if results["baseline_ic_only"] else "u0 and (c2, k) as input channels"
    return [
        "zero-shot: the checkpoint only; no Sine-Gordon solution. Per test PDE it reads the graph: "
        "the equations (c2, k, the sin(u) term) and u0, v0 = 0.",
        f"finetune: the checkpoint plus the n training solutions: {steps} Adam steps, batch {BATCH} "
        f"drawn with replacement from the n samples, {q} random (t, x, y) points of each per step; "
        "graphs as above.",
        f"fno3d, fno2d, unet: random init, the same n solutions on the whole 21x32x32 grid, {steps} Adam "
        f"steps of min({BATCH}, n) samples; inputs {coefs}; never the equation.",
        f"all: scored after the last step on the {results['num_test']} test PDEs (seed 101), mean "
        "relative L2 on the full grid; nothing is chosen on the test set.",
    ]


def table(results: dict) -> str:
    lines = [
        f"| n | PDEformer-{results['model_size']} finetuned | FNO3D | FNO2D | U-Net |",
        "|---|---|---|---|---|",
        f"| 0 (zero-shot) | {results['zero_shot']['final']:.4f} | | | |",
    ]
    for n, runs in results["runs"].items():
        cells = [f"{runs[k]['final']:.4f}" if runs.get(k) else "n/a" for k in LEARNERS]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(n) for n in results["runs"]]
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    labels = {
        "finetune": f"PDEformer-{results['model_size']} finetuned",
        "fno3d": "FNO3D",
        "fno2d": "FNO2D",
        "unet": "U-Net",
    }
    for i, name in enumerate(LEARNERS):
        pts = [
            (n, results["runs"][str(n)][name]["final"]) for n in sizes if results["runs"][str(n)].get(name)
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", color=f"C{i}", label=labels[name])
    ax.axhline(results["zero_shot"]["final"], color="gray", ls="--", lw=1, label="PDEformer zero-shot")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel(f"training samples n ({results['steps']} steps each)")
    ax.set_ylabel(f"test rel. L2 ({results['num_test']} PDEs)")
    ax.set_title(f"few-shot 2-D Sine-Gordon ({Path(results['checkpoint']).name})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="pretrained 2-D checkpoint (e.g. best.pt)")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK.num_test} test PDEs, {QUICK.steps} steps")
    ap.add_argument("--steps", type=int, default=None, help=f"optimizer steps per run [{FULL.steps}]")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="training sizes [1 4 20 80]")
    ap.add_argument("--finetune-lr", type=float, default=3e-4)
    ap.add_argument("--baseline-lr", type=float, default=1e-3)
    ap.add_argument("--baseline-ic-only", action="store_true", help="baselines without (c2, k) inputs")
    ap.add_argument("--skip", nargs="*", default=[], choices=LEARNERS, help="learners to leave out")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ... (auto: cuda if available)")
    ap.add_argument("--out-dir", type=Path, default=Path("out/pde/few_shot2d"), help="data and runs")
    ap.add_argument("--json", type=Path, default=None, help="results [<out-dir>/few_shot2d[_quick].json]")
    args = ap.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    setting = QUICK if args.quick else FULL
    if args.steps is not None:
        if args.steps < 1:
            ap.error("--steps must be >= 1")
        setting = replace(setting, steps=args.steps)
    if args.sizes:
        setting = replace(setting, sizes=tuple(sorted(set(args.sizes))))
    try:
        size, log_scalars = checkpoint_model(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        ap.error(f"--checkpoint: {e}")
    stem = "few_shot2d_quick" if args.quick else "few_shot2d"
    json_path = args.json if args.json is not None else args.out_dir / f"{stem}.json"
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    t0 = time.time()

    files = make_data(setting, args.out_dir / "data")
    data_seconds = time.time() - t0
    args.test_data = PDEDataset(files[1], num_mod=PRESETS[size].num_mod)
    model, _ = load_model(args.checkpoint, args.device)
    per = evaluate(model, args.test_data, device=args.device)
    zero_shot = {"final": float(per.mean()), "per_sample": per.tolist()}
    print(f"data {data_seconds:.0f} s ({files[0].name}, {files[1].name})")
    print(f"zero-shot rel-L2 {zero_shot['final']:.4f}")

    train_arrays = load_arrays(files[0], max(setting.sizes), args.device)
    test_arrays = load_arrays(files[1], None, args.device)
    runs: dict[str, dict] = {}
    run_dir = args.out_dir / ("quick_runs" if args.quick else "runs")
    for n in setting.sizes:
        runs[str(n)] = {}
        for name in LEARNERS:
            if name in args.skip:
                runs[str(n)][name] = None
                continue
            if name == "finetune":
                res = run_finetune(args, setting, n, files, run_dir, size, log_scalars)
            else:
                res = run_baseline(args, setting, name, n, train_arrays, test_arrays)
            runs[str(n)][name] = res
            print(f"  {name:8s} n={n:3d}: rel-L2 {res['final']:.4f} ({res['seconds']:.0f} s)")
    results = {
        "family": FAMILY,
        "equations": list(EQUATIONS),
        "checkpoint": str(args.checkpoint),
        "model_size": size,
        "quick": args.quick,
        "sizes": list(setting.sizes),
        "num_test": len(args.test_data),
        "steps": setting.steps,
        "batch_size": BATCH,
        "num_query_points": setting.num_query_points,
        "finetune_lr": args.finetune_lr,
        "baseline_lr": args.baseline_lr,
        "baseline_ic_only": args.baseline_ic_only,
        "device": args.device,
        "zero_shot": zero_shot,
        "runs": runs,
        "data_seconds": data_seconds,
        "wall_seconds": time.time() - t0,
        "torch_threads": torch.get_num_threads(),
        "command": shlex.join(["python", "benchmarks/pde/few_shot2d.py", *argv_used]),
    }
    results["what_each_method_saw"] = what_each_saw(results)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1))
    md = table(results) + "\n\n" + "\n".join(f"- {line}" for line in results["what_each_method_saw"])
    json_path.with_suffix(".md").write_text(md + f"\n\nReproduce: `{results['command']}`\n")
    plot(results, json_path.with_suffix(".png"))
    print(md)
    print(f"wall {results['wall_seconds']:.0f} s; wrote {json_path.with_suffix('')}.{{json,md,png}}")
    print(f"reproduce: OMP_NUM_THREADS=1 PYTHONPATH=src {results['command']}")
    return results


if __name__ == "__main__":
    main()
