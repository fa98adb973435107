"""Accuracy and cost of the periodic 2D solvers (`foundry.pde.data.spectral2d`) on random family members.

1. Error vs dt: B random DCR members at 64^2 (t in [0, 1], 101 frames), each dt against dt = 3.125e-4.
2. Error vs n: the same kind of draws made at 128^2 and truncated in Fourier space to n = 16/32/64,
   solved at dt = 1.25e-3 and compared on the coarse grid points with the 128^2 solution.
   Errors are relative L2 over all frames, per sample; the median and max over the members that
   stay bounded (|u| <= U_MAX) at every setting, with the count that failed only at a coarse one.
3. Seconds per sample (full t in [0, 1], 101 frames) at 32^2/64^2/128^2: DCR at dt = 2.5e-3 (the
   reference's first sub-step, 1/(100 * 4)), DCR with `solve_dcr_refining` (failed samples re-solved at
   1.25e-3 and 3.125e-4) and Wave (exact propagator); "bounded" is the fraction with |u| <= U_MAX.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/pde/solvers2d.py [--json] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from foundry.pde.data.families2d import DCRBatch, sample_dcr, sample_wave
from foundry.pde.data.spectral2d import solve_dcr, solve_dcr_refining, solve_wave

REFINE_DTS = (2.5e-3, 1.25e-3, 3.125e-4)  # the reference's n_sub = 4, 8, 32 of 1/100


def truncate(f: torch.Tensor, n: int) -> torch.Tensor:
    """The n x n grid values of f's Fourier modes that an n-point grid resolves (Nyquist dropped)."""
    big, h = f.shape[-1], n // 2
    fh = torch.fft.rfft2(f)
    sub = torch.cat([fh[..., :h, : h + 1], fh[..., big - h :, : h + 1]], dim=-2) * (n / big) ** 2
    sub[..., h, :] = 0.0
    sub[..., :, h] = 0.0
    return torch.fft.irfft2(sub, s=(n, n))


def run_dcr(p: DCRBatch, dt: float, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    fields = (p.u0, p.source) if n is None else (truncate(p.u0, n), truncate(p.source, n))
    return solve_dcr(fields[0], p.a, p.c0, p.c1, p.c2, fields[1], dt=dt)


def rel_errors(u: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (u - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)


def summarise(errs: dict, oks: dict, ok_ref: torch.Tensor) -> list[dict]:
    both = ok_ref.clone()
    for ok in oks.values():
        both &= ok
    rows = []
    for key, e in errs.items():
        kept = e[both].tolist()
        rows.append(
            {
                "setting": key,
                "median": statistics.median(kept),
                "max": max(kept),
                "samples": len(kept),
                "failed_here_only": int((ok_ref & ~oks[key]).sum()),
            }
        )
    return rows


def error_vs_dt(batch: int, seed: int) -> list[dict]:
    p = sample_dcr(torch.Generator().manual_seed(seed), batch, 64)
    ref, ok_ref = run_dcr(p, 3.125e-4)
    errs, oks = {}, {}
    for dt in (5e-3, 2.5e-3, 1.25e-3, 6.25e-4):
        u, oks[dt] = run_dcr(p, dt)
        errs[dt] = rel_errors(u, ref)
    return summarise(errs, oks, ok_ref)


def error_vs_n(batch: int, seed: int) -> list[dict]:
    p = sample_dcr(torch.Generator().manual_seed(seed), batch, 128)
    ref, ok_ref = run_dcr(p, 1.25e-3)
    errs, oks = {}, {}
    for n in (16, 32, 64):
        u, oks[n] = run_dcr(p, 1.25e-3, n)
        errs[n] = rel_errors(u, ref[..., :: 128 // n, :: 128 // n])
    return summarise(errs, oks, ok_ref)


def timing(seed: int) -> list[dict]:
    rows = []
    for n, batch in ((32, 16), (64, 8), (128, 4)):
        p = sample_dcr(torch.Generator().manual_seed(seed), batch, n)
        start = time.perf_counter()
        _, ok = run_dcr(p, 2.5e-3)
        dcr_s = (time.perf_counter() - start) / batch
        start = time.perf_counter()
        _, ok_refined, _ = solve_dcr_refining(p.u0, p.a, p.c0, p.c1, p.c2, p.source, dts=REFINE_DTS)
        refined_s = (time.perf_counter() - start) / batch
        w = sample_wave(torch.Generator().manual_seed(seed), batch, n)
        start = time.perf_counter()
        solve_wave(w.u0, w.v0, w.c2, w.damping, w.source)
        wave_s = (time.perf_counter() - start) / batch
        rows.append(
            {
                "n": n,
                "batch": batch,
                "dcr_s": dcr_s,
                "dcr_ok": float(ok.double().mean()),
                "refined_s": refined_s,
                "refined_ok": float(ok_refined.double().mean()),
                "wave_s": wave_s,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--batch", type=int, default=8, help="random members per error study")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "error_vs_dt": error_vs_dt(args.batch, args.seed),
        "error_vs_n": error_vs_n(args.batch, args.seed + 1),
        "seconds_per_sample": timing(args.seed + 2),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"torch {result['torch']}, {result['threads']} thread(s)")
    for key, label in (("error_vs_dt", "dt (n = 64)"), ("error_vs_n", "n (dt = 1.25e-3)")):
        print(f"\n| {label} | median rel L2 | max rel L2 | samples | failed only here |")
        print("|---|---|---|---|---|")
        for r in result[key]:
            cells = [r["setting"], f"{r['median']:.2e}", f"{r['max']:.2e}"]
            cells += [r["samples"], r["failed_here_only"]]
            print("| " + " | ".join(map(str, cells)) + " |")
    print("\n| n | batch | DCR s/sample, dt 2.5e-3 | bounded | refining s/sample | bounded | Wave s/sample |")
    print("|---|---|---|---|---|---|---|")
    for r in result["seconds_per_sample"]:
        cells = [r["n"], r["batch"], f"{r['dcr_s']:.3f}", f"{r['dcr_ok']:.2f}", f"{r['refined_s']:.3f}"]
        cells += [f"{r['refined_ok']:.2f}", f"{r['wave_s']:.4f}"]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
