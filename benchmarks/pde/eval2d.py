"""Held-out relative L2 of a 2-D checkpoint per family (the PDEformer-2 results table of docs/pde2.md).

    OMP_NUM_THREADS=1 python benchmarks/pde/eval2d.py --checkpoint CKPT --test-dir DIR [--json OUT]

``DIR`` holds one held-out file per family from `foundry pde generate2d --seed 1` (the training
files use seeds 0 and 2). Each sample is scored on its full grid (21 frames x 32 x 32, or the one
frame at t = 0 of a steady family; points inside the domain only) by
`foundry.pde.training.evaluate.evaluate`; the table gives the mean, the median and
the share of samples under 0.1 and 0.3, and the error of two trivial predictors on the same samples
for scale: "zero" (u = 0, relative L2 1 by definition) and "frozen IC" (u(t) = u0 for every t;
only rows whose target has an initial condition: not steady rows, not the INS pressure).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np


def frozen_ic_error(u: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Relative L2 of predicting u(t) = u(0) at every frame: u [N, T, G, G] -> [N]."""
    m = np.ones(u.shape[2:], bool)[None] if mask is None else mask
    pred = np.broadcast_to(u[:, :1], u.shape)
    diff = ((pred - u) * m[:, None]).reshape(len(u), -1)
    ref = (u * m[:, None]).reshape(len(u), -1)
    return np.linalg.norm(diff, axis=1) / (np.linalg.norm(ref, axis=1) + 1e-6)


def frozen_ic_mean(path: Path, ds) -> float | None:
    """The frozen-IC error over the rows whose target has an initial condition (None: no such row).

    Steady files have none (their one frame is the answer), nor has the pressure of the INS rows.
    """
    import h5py

    with h5py.File(path, "r") as f:
        family, var = str(f.attrs.get("family", "")), f["var"][:]
    if family.startswith("steady-"):
        return None
    rows = var < 2 if family == "ins-periodic" else np.ones(len(var), bool)
    mask = ds.mask[rows] if ds.mask is not None else None
    return float(frozen_ic_error(ds.u[rows], mask).mean())


def main(argv: list[str] | None = None) -> dict:
    import torch

    from foundry.pde.data.dataset import PDEDataset
    from foundry.pde.inference import load_model
    from foundry.pde.training.evaluate import evaluate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--test-dir", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, meta = load_model(args.checkpoint)
    rows = {}
    for path in sorted(args.test_dir.glob("*.h5")):
        ds = PDEDataset(path, num_mod=model.config.num_mod)
        start = time.perf_counter()
        err = evaluate(model, ds)
        rows[path.stem] = {
            "samples": len(err),
            "mean": float(err.mean()),
            "median": float(np.median(err)),
            "under_0.1": float((err < 0.1).mean()),
            "under_0.3": float((err < 0.3).mean()),
            "frozen_ic_mean": frozen_ic_mean(path, ds),
            "seconds": time.perf_counter() - start,
        }
    command = "OMP_NUM_THREADS=1 python benchmarks/pde/eval2d.py " + shlex.join(argv or sys.argv[1:])
    print(f"checkpoint {args.checkpoint} (step {meta.get('step')}), test files in {args.test_dir}\n")
    print("| family | samples | mean rel L2 | median | < 0.1 | < 0.3 | frozen-IC mean |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['samples']} | {r['mean']:.3f} | {r['median']:.3f} | {r['under_0.1']:.2f} | "
            f"{r['under_0.3']:.2f} | {_fmt(r['frozen_ic_mean'])} |"
        )
    print(f"\nreproduce: {command}")
    out = {"checkpoint": str(args.checkpoint), "step": meta.get("step"), "rows": rows, "command": command}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return out


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    main()
