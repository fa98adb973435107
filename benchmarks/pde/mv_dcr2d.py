"""Accuracy and cost of the periodic MV-DCR solver (`foundry.pde.data.mv_dcr2d`).

1. Error vs dt: B random K = 2 members (`sample_mv_dcr`, seed 0) at 64^2, t in [0, 1], 101 frames, each
   dt against dt = 3.125e-4; relative L2 over all frames and components per member, median and max over
   the members bounded at every dt, with the count bounded in the reference but not at that dt.
2. Seconds per sample at 64^2 (full t in [0, 1]) for K = 2, 3, 4 (seed 1), with the bounded fraction:
   one solve at dt = 2.5e-3, and `solve_mv_dcr_refining` (failed members re-solved at 1.25e-3, 6.25e-4,
   3.125e-4).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/pde/mv_dcr2d.py [--json] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from foundry.pde.data.mv_dcr2d import MVDCRBatch, sample_mv_dcr, solve_mv_dcr, solve_mv_dcr_refining

N = 64
REF_DT = 3.125e-4
DTS = (5e-3, 2.5e-3, 1.25e-3, 6.25e-4)


def run(p: MVDCRBatch, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    return solve_mv_dcr(p.u0, p.a, p.lin, p.flux_x, p.flux_y, p.q0, p.qx, p.qy, p.source, dt=dt)


def error_vs_dt(batch: int) -> list[dict]:
    p = sample_mv_dcr(torch.Generator().manual_seed(0), batch, N, k=2)
    ref, ok_ref = run(p, REF_DT)
    sols = {dt: run(p, dt) for dt in DTS}
    both = ok_ref.clone()
    for _, ok in sols.values():
        both &= ok
    rows = []
    for dt, (u, ok) in sols.items():
        err = (u - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)
        kept = err[both].tolist()
        rows.append(
            {
                "dt": dt,
                "median": statistics.median(kept) if kept else None,
                "max": max(kept) if kept else None,
                "samples": len(kept),
                "failed_only_here": int((ok_ref & ~ok).sum()),
                "reference_bounded": int(ok_ref.sum()),
            }
        )
    return rows


def cost(batch: int) -> list[dict]:
    rows = []
    for k in (2, 3, 4):
        p = sample_mv_dcr(torch.Generator().manual_seed(1), batch, N, k=k)
        t0 = time.perf_counter()
        _, ok = run(p, 2.5e-3)
        sec = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, ok_r, _ = solve_mv_dcr_refining(p)
        sec_r = time.perf_counter() - t0
        rows.append(
            {
                "k": k,
                "batch": batch,
                "s_per_sample": sec / batch,
                "bounded": ok.double().mean().item(),
                "refining_s_per_sample": sec_r / batch,
                "refining_bounded": ok_r.double().mean().item(),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {
        "host": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "n": N,
        "error_vs_dt": error_vs_dt(args.batch),
        "cost": cost(args.batch),
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"error vs dt, K=2, {N}^2, against dt={REF_DT}")
    print("| dt | median rel L2 | max rel L2 | samples | failed only here |\n|---|---|---|---|---|")
    for r in out["error_vs_dt"]:
        med = f"{r['median']:.2e}" if r["median"] is not None else "-"
        mx = f"{r['max']:.2e}" if r["max"] is not None else "-"
        print(f"| {r['dt']:g} | {med} | {mx} | {r['samples']} | {r['failed_only_here']} |")
    print(f"reference bounded: {out['error_vs_dt'][0]['reference_bounded']} of {args.batch}")
    print(f"\nseconds per sample, {N}^2")
    print(
        "| K | batch | s/sample, dt 2.5e-3 | bounded | refining s/sample | bounded |\n"
        "|---|---|---|---|---|---|"
    )
    for r in out["cost"]:
        print(
            f"| {r['k']} | {r['batch']} | {r['s_per_sample']:.3f} | {r['bounded']:.2f} "
            f"| {r['refining_s_per_sample']:.3f} | {r['refining_bounded']:.2f} |"
        )


if __name__ == "__main__":
    main()
