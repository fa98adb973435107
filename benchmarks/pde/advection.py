"""Pure advection u_t + c*u_x = 0 zero-shot, against its closed form, and why it was learned weakly.

    OMP_NUM_THREADS=1 python benchmarks/pde/advection.py [--checkpoint CKPT] [--data FILE]

Table: relative L2 (full 101 x 128 grid) of the model's prediction vs the exact solution
u(t, x) = u0(x - c t) (periodic on [-1, 1)) for c in {+-0.5, +-1, +-2} and a few smooth periodic
initial conditions, the text parsed with and without canonicalisation (``u_t + 1*u_x`` vs the raw
``u_t + u_x`` graph). Diagnosis (``--data``, a sinus0 file): the share of samples whose solution
travels appreciably (the best circular shift of u(0) explaining u(1) moves >= 1/16 of the period
and explains it to within 20 %), the share with a flux coefficient c11 and no other motion, and the
model's sensitivity to c (how far its predicted travel distance follows c).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from foundry.pde.graph.parser import parse_function, parse_pde
from foundry.pde.inference import load_model, predict

SPEEDS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)
ICS = ("sin(pi*x)", "cos(pi*x) + 0.5*sin(2*pi*x)", "exp(sin(pi*x)) - 1.27", "0.8*sin(3*pi*x + 1)")
T, X = np.linspace(0, 1, 101), np.linspace(-1, 1, 128, endpoint=False)


def exact(ic: str, c: float) -> np.ndarray:
    """u0(x - c t) wrapped to [-1, 1): the closed form of periodic advection."""
    f = parse_function(ic)
    xs = (X[None, :] - c * T[:, None] + 1.0) % 2.0 - 1.0
    return f(xs)


def rel_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(pred - ref) / (np.linalg.norm(ref) + 1e-6))


def equation(c: float) -> str:
    # the way users type it: "u_t + u_x = 0", "u_t - 2*u_x = 0"
    mag = "" if abs(c) == 1 else f"{abs(c):g}*"
    return f"u_t {'+' if c > 0 else '-'} {mag}u_x = 0"


def best_shift(u0: np.ndarray, u1: np.ndarray) -> tuple[int, float]:
    """Circular shift s (cells) of u0 closest to u1 and the relative misfit of that shift."""
    errs = [np.linalg.norm(np.roll(u0, s) - u1) for s in range(len(u0))]
    s = int(np.argmin(errs))
    return (s if s <= len(u0) // 2 else s - len(u0)), errs[s] / (np.linalg.norm(u1) + 1e-9)


def travel(u: np.ndarray) -> float:
    """Distance in x the profile u(0) travels by t = 1 (best circular shift), in units of x."""
    s, _ = best_shift(u[0], u[-1])
    return 2.0 * s / u.shape[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--data", default=None, help="a sinus0 file for the training-set diagnosis")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, meta = load_model(args.checkpoint)
    rows, out = [], {"checkpoint": args.checkpoint or "shipped", "rel_l2": meta.get("rel_l2")}
    for c in SPEEDS:
        errs, raw, moved = [], [], []
        for ic in ICS:
            ref = exact(ic, c)
            pred = predict(model, parse_pde(equation(c), ic), T, X)
            errs.append(rel_l2(pred, ref))
            raw.append(rel_l2(predict(model, parse_pde(equation(c), ic, canonical=False), T, X), ref))
            moved.append(travel(pred))
        rows.append(
            {"c": c, "equation": equation(c), "rel_l2": errs, "raw_graph_rel_l2": raw, "travel": moved}
        )
        print(
            f"{equation(c):18s} rel-L2 per IC {' '.join(f'{e:.3f}' for e in errs)}  max {max(errs):.3f}  "
            f"(uncanonical graph max {max(raw):.3f}); predicted travel {np.mean(moved):+.2f} (exact {c:+.2f}"
            f" mod 2)"
        )
    out["advection"] = rows
    if args.data:
        import h5py

        with h5py.File(args.data, "r") as f:
            u, c0, c1 = f["u"][:], f["c0"][:], f["c1"][:]
            kappa, src = f["kappa"][:], f["source_kind"][:]
        shifts = [best_shift(s[0], s[-1]) for s in u]
        moves = np.array([abs(s) >= u.shape[2] // 16 and m < 0.2 for s, m in shifts])
        pure = (c1[:, 0] != 0) & (c1[:, 1:] == 0).all(1) & (c0 == 0).all(1) & (src == 0)
        k = kappa.mean(1)
        diag = {
            "samples": len(u),
            "travel_ge_1_16_share": float(moves.mean()),
            "pure_linear_flux_share": float(pure.mean()),
            "kappa_median": float(np.median(k)),
            "kappa_gt_0.05_share": float((k > 0.05).mean()),
        }
        print(json.dumps(diag))
        out["training_set"] = diag
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
