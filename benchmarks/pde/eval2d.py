"""Held-out relative L2 of a 2-D checkpoint per family (the PDEformer-2 results table of docs/pde2.md).

    OMP_NUM_THREADS=1 python benchmarks/pde/eval2d.py --checkpoint CKPT --test-dir DIR [--json OUT]

``DIR`` holds one held-out file per family from `foundry pde generate2d --seed 1` (the training
files use seed 0). Each sample is scored on its full grid (21 frames x 32 x 32, points inside the
domain only) by `foundry.pde.training.evaluate.evaluate`; the table gives the mean, the median and
the share of samples under 0.1 and 0.3, and the error of two trivial predictors on the same samples
for scale: "zero" (u = 0, relative L2 1 by definition) and "frozen IC" (u(t) = u0 for every t).
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
            "frozen_ic_mean": float(frozen_ic_error(ds.u, ds.mask).mean()),
            "seconds": time.perf_counter() - start,
        }
    command = "OMP_NUM_THREADS=1 python benchmarks/pde/eval2d.py " + shlex.join(argv or sys.argv[1:])
    print(f"checkpoint {args.checkpoint} (step {meta.get('step')}), test files in {args.test_dir}\n")
    print("| family | samples | mean rel L2 | median | < 0.1 | < 0.3 | frozen-IC mean |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['samples']} | {r['mean']:.3f} | {r['median']:.3f} | {r['under_0.1']:.2f} | "
            f"{r['under_0.3']:.2f} | {r['frozen_ic_mean']:.3f} |"
        )
    print(f"\nreproduce: {command}")
    out = {"checkpoint": str(args.checkpoint), "step": meta.get("step"), "rows": rows, "command": command}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
