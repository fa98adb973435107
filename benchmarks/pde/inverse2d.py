"""2-D inverse problems through a PDEformer-2 checkpoint ("2-XS"): scalars by PSO and by gradient,
a source field by gradient on its 32 x 32 function row.

Problems (`foundry.pde.inverse.problems2d`, periodic unit square, truth by `spectral2d`; default 8
initial conditions, 200 random (t, x, y) observations each, 1% uniform noise on u and the ICs):

- wave:   u_t - v = 0, v_t + mu v - c2 Δu = 0; recover (c2, mu) in [0.01, 4] x [0, 1];
- dcr:    u_t - a Δu + c01 u = 0; recover (a, c01) in [0, 0.02] x [-1.5, 1.5];
- source: u_t - a Δu + s(x, y) = 0, a known; recover s (1024 values, smoothness regulariser).

Reported: recovered vs true values (absolute and relative error; relative L2 for the field), the
misfit (mean normalised RMSE over the ICs) at the recovered and at the true unknowns (the model's
own error floor), wall time and model passes. Takes about a minute on one core.

    OMP_NUM_THREADS=1 python benchmarks/pde/inverse2d.py --checkpoint CKPT [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from foundry.pde.inference import default_checkpoint2d, load_model
from foundry.pde.inverse.field import recover_field
from foundry.pde.inverse.problems2d import KINDS, make_problem2d
from foundry.pde.inverse.pso import PSOConfig
from foundry.pde.inverse.scalar import ScalarInversion, recover_gradient, recover_pso

FULL = dict(pso_particles=48, pso_generations=25, gd_starts=3, gd_steps=100, gd_lr=0.05, field_steps=300,
            field_lr=0.05, field_reg=3e-4)  # fmt: skip
TINY = dict(pso_particles=6, pso_generations=2, gd_starts=1, gd_steps=2, gd_lr=0.05, field_steps=2,
            field_lr=0.05, field_reg=1e-3)  # fmt: skip


def scalar_rows(model, prob, cfg: dict, seed: int) -> list[dict]:
    inv = ScalarInversion(model, prob.build, list(prob.names), prob.obs)
    at_truth = float(inv.misfit_numpy(prob.truth[None])[0])
    results = [
        recover_pso(
            inv, prob.lower, prob.upper, PSOConfig(cfg["pso_particles"], cfg["pso_generations"], seed=seed)
        ),
        recover_gradient(inv, prob.lower, prob.upper, cfg["gd_starts"], cfg["gd_steps"], cfg["gd_lr"], seed),
    ]
    rows = []
    for r in results:
        err = np.abs(r.values - prob.truth)
        rows.append(
            dict(
                problem=prob.kind, method=r.method, unknowns=list(prob.names), truth=prob.truth.tolist(),
                recovered=r.values.tolist(), abs_error=err.tolist(),
                rel_error=(err / np.maximum(np.abs(prob.truth), 1e-12)).tolist(), misfit=r.misfit,
                misfit_at_truth=at_truth, seconds=r.seconds, model_passes=r.num_model_passes,
            )
        )  # fmt: skip
    return rows


def field_row(model, prob, cfg: dict) -> dict:
    res = recover_field(
        model, prob.build, prob.obs, num_steps=cfg["field_steps"], lr=cfg["field_lr"],
        reg_weight=cfg["field_reg"], reg_kind="smooth", truth=prob.truth,
    )  # fmt: skip
    at_truth = recover_field(
        model, prob.build, prob.obs, num_steps=1, lr=1e-12, reg_weight=0.0, init=prob.truth
    )
    return dict(
        problem=prob.kind, method="gradient", unknowns=["s(x,y) 32x32"], rel_l2=res.rel_l2, misfit=res.misfit,
        misfit_at_truth=at_truth.history[0], misfit_start=res.history[0], seconds=res.seconds,
        model_passes=(len(res.history) + 1) * prob.obs.ic.shape[0],
    )  # fmt: skip


def _fmt(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.4g}" for x in v) + "]"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def table(rows: list[dict]) -> str:
    head = "| problem | method | unknowns | truth | recovered | error | misfit | misfit at truth | s |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        if "rel_l2" in r:
            truth, rec, err = "-", "-", f"rel L2 {r['rel_l2']:.3f}"
        else:
            truth, rec, err = _fmt(r["truth"]), _fmt(r["recovered"]), "rel " + _fmt(r["rel_error"])
        lines.append(
            f"| {r['problem']} | {r['method']} | {', '.join(r['unknowns'])} | {truth} | {rec} | {err} | "
            f"{r['misfit']:.4f} | {r['misfit_at_truth']:.4f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None, help="a 2-D checkpoint [the shipped 2-D one]")
    ap.add_argument("--json", type=Path, default=None, help="write the rows and settings here")
    ap.add_argument("--problems", default=",".join(KINDS), help=f"comma list of {', '.join(KINDS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-ics", type=int, default=8)
    ap.add_argument("--num-points", type=int, default=200, help="observations per IC")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--tiny", action="store_true", help="a few steps only (tests)")
    keys = ", ".join(FULL)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=f"override a setting, e.g. --set field_steps=1000; keys: {keys}")  # fmt: skip
    args = ap.parse_args(argv)
    problems = [p for p in args.problems.split(",") if p]
    if bad := [p for p in problems if p not in KINDS]:
        ap.error(f"--problems: unknown {bad}; choose from {', '.join(KINDS)}")
    torch.set_num_threads(1)
    cfg = dict(TINY if args.tiny else FULL)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg or not value:
            ap.error(f"--set {item!r}: need KEY=VALUE with KEY one of {', '.join(cfg)}")
        cfg[key] = type(cfg[key])(value)
    start = time.perf_counter()
    ckpt = args.checkpoint or default_checkpoint2d()
    model, _ = load_model(ckpt)
    if model.config.num_coords != 3:
        ap.error(f"{ckpt} is a {model.config.num_coords - 1}-D model; this benchmark needs a 2-D checkpoint")
    rows = []
    for kind in problems:
        t = time.perf_counter()
        prob = make_problem2d(kind, args.seed, args.num_ics, args.num_points, args.noise)
        print(f"[{time.perf_counter() - start:5.1f} s] {kind}: {prob.description}", flush=True)
        rows += (
            [field_row(model, prob, cfg)] if kind == "source" else scalar_rows(model, prob, cfg, args.seed)
        )
        print(
            f"[{time.perf_counter() - start:5.1f} s] {kind} done in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
    meta = dict(
        checkpoint=str(ckpt), seed=args.seed, num_ics=args.num_ics, num_points=args.num_points,
        noise=args.noise, config=cfg, total_seconds=time.perf_counter() - start,
    )  # fmt: skip
    print(table(rows))
    print(f"\ntotal {meta['total_seconds']:.1f} s")
    cmd = [
        "OMP_NUM_THREADS=1",
        "python",
        "benchmarks/pde/inverse2d.py",
        *(argv if argv is not None else sys.argv[1:]),
    ]
    print("reproduce: " + " ".join(cmd))
    out = dict(meta=meta, rows=rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
