"""Inverse problems: error vs noise and wall time, through PDEformer and with the solver in the loop.

Scalar problems (sinus0 members, 1-3 unknown coefficients, 40 ICs, 20 x 20 scattered observations):
PSO over the model, Adam through the model (gradient via node_scalar), and scipy L-BFGS-B over the
numerical solver. Field problems (unknown source s(x), 128 values): Adam through the model's
function encoder (squared-L2 regulariser) and L-BFGS-B over a 9-number Fourier parametrisation
with the solver. Noise levels 0, 1%, 5% (uniform, relative to each solution's max).

    OMP_NUM_THREADS=1 python benchmarks/pde/inverse.py [--checkpoint CKPT] [--quick]

Writes inverse.json, .md and .png into --out-dir (default docs/figures/pde); --quick writes
inverse_quick.* into out/pde/quick (ignored): a quick run never touches the committed results.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from foundry.pde.data.sinus import params_to_pde
from foundry.pde.inference import default_checkpoint, load_model
from foundry.pde.inverse.field import recover_field
from foundry.pde.inverse.problems import describe, grid, make_problem, observe, set_scalars
from foundry.pde.inverse.pso import PSOConfig
from foundry.pde.inverse.scalar import ScalarInversion, recover_gradient, recover_pso
from foundry.pde.inverse.solver_baseline import recover_field_solver, recover_scalars_solver

FULL = dict(
    scalar_problems=2, field_problems=1, num_ics=40, noise=(0.0, 0.01, 0.05),
    pso_particles=12, pso_generations=8, gd_starts=1, gd_steps=20, gd_lr=0.15, solver_iter=4,
    field_steps=20, field_lr=0.15, field_solver_iter=2,
)  # fmt: skip
QUICK = dict(
    scalar_problems=1, field_problems=1, num_ics=3, noise=(0.0, 0.05),
    pso_particles=8, pso_generations=3, gd_starts=1, gd_steps=3, gd_lr=0.1, solver_iter=1,
    field_steps=3, field_lr=0.1, field_solver_iter=1,
)  # fmt: skip


def scalar_runs(model, cfg: dict, log) -> list[dict]:
    _, x = grid()
    rows = []
    for p in range(cfg["scalar_problems"]):
        prob = make_problem(p, "scalar", num_ics=cfg["num_ics"])
        log(f"scalar problem {p}: {describe(prob.params, prob.names)}; truth {np.round(prob.truth, 4)}")
        for j, noise in enumerate(cfg["noise"]):
            obs = observe(np.random.default_rng([p, j]), prob.u, prob.ics, noise)
            base = replace(prob.params, u0=obs.ic[0])

            def build(theta, base=base, names=prob.names):
                return params_to_pde(set_scalars(base, names, theta), x)

            inv = ScalarInversion(model, build, list(prob.names), obs)
            if not rows:  # warm up autograd and the allocator outside the timings
                recover_gradient(inv, -3, 3, 1, 1)
            truth_misfit = float(inv.misfit_numpy(prob.truth[None])[0])
            results = [
                recover_pso(inv, -3, 3, PSOConfig(cfg["pso_particles"], cfg["pso_generations"], seed=p)),
                recover_gradient(inv, -3, 3, cfg["gd_starts"], cfg["gd_steps"], cfg["gd_lr"], seed=p),
            ]
            solver = recover_scalars_solver(prob.params, prob.names, obs, max_iter=cfg["solver_iter"])
            for method, values, misfit, sec in [
                (r.method, r.values, r.misfit, r.seconds) for r in results
            ] + [("solver L-BFGS-B", solver.values, solver.misfit, solver.seconds)]:
                err = np.abs(values - prob.truth)
                rows.append(dict(
                    kind="scalar", problem=p, noise=noise, method=method, names=list(prob.names),
                    truth=prob.truth.tolist(), values=np.asarray(values).tolist(), mae=float(err.mean()),
                    max_err=float(err.max()), misfit=misfit, seconds=sec, model_misfit_at_truth=truth_misfit,
                    zero_guess_mae=float(np.abs(prob.truth).mean()),
                ))  # fmt: skip
                log(f"  noise {noise:.2f} {method:>16}: MAE {err.mean():.3f} misfit {misfit:.4f} {sec:.1f} s")
    return rows


def field_runs(model, cfg: dict, log) -> list[dict]:
    _, x = grid()
    rows = []
    for p in range(cfg["field_problems"]):
        prob = make_problem(100 + p, "field", num_ics=cfg["num_ics"])
        truth = prob.truth
        log(f"field problem {p}: {describe(prob.params, ())}")
        for j, noise in enumerate(cfg["noise"]):
            obs = observe(np.random.default_rng([100 + p, j]), prob.u, prob.ics, noise)

            def build(s, params=prob.params, ic=obs.ic[0]):
                return params_to_pde(replace(params, source=s, u0=ic), x)

            gd = recover_field(model, build, obs, cfg["field_steps"], cfg["field_lr"], 1e-5, "l2")
            solver = recover_field_solver(prob.params, obs, max_iter=cfg["field_solver_iter"])
            for method, values, misfit, sec in (
                ("gradient (Adam, L2 reg)", gd.values, gd.misfit, gd.seconds),
                ("solver L-BFGS-B (9 Fourier coefs)", solver.values, solver.misfit, solver.seconds),
            ):
                rel = float(np.linalg.norm(values - truth) / np.linalg.norm(truth))
                rows.append(dict(
                    kind="field", problem=p, noise=noise, method=method, rel_l2=rel, misfit=misfit,
                    seconds=sec, truth=truth.tolist(), values=np.asarray(values).tolist(),
                ))  # fmt: skip
                log(f"  noise {noise:.2f} {method:>34}: rel-L2 {rel:.3f} misfit {misfit:.4f} {sec:.1f} s")
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["kind"], r["method"], r["noise"]) for r in rows})
    for kind, method, noise in keys:
        sel = [r for r in rows if (r["kind"], r["method"], r["noise"]) == (kind, method, noise)]
        err = [r["mae"] if kind == "scalar" else r["rel_l2"] for r in sel]
        out.append(dict(
            kind=kind, method=method, noise=noise, num_problems=len(sel), error=float(np.mean(err)),
            misfit=float(np.mean([r["misfit"] for r in sel])),
            seconds=float(np.mean([r["seconds"] for r in sel])),
        ))  # fmt: skip
    return out


def markdown(summary: list[dict], rows: list[dict], meta: dict) -> str:
    lines = [
        f"Checkpoint: `{meta['checkpoint']}`; {meta['num_ics']} ICs per problem, 20 x 20 observations; "
        f"total {meta['total_seconds']:.0f} s; load average at start {meta['loadavg']}.",
        "",
        "| kind | method | noise | problems | error | misfit | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['kind']} | {s['method']} | {s['noise']:.0%} | {s['num_problems']} | {s['error']:.3f} | "
            f"{s['misfit']:.4f} | {s['seconds']:.1f} |"
        )
    sc = [r for r in rows if r["kind"] == "scalar" and r["method"] == "pso"]
    if sc:
        zero = np.mean([r["zero_guess_mae"] for r in sc])
        at_truth = np.mean([r["model_misfit_at_truth"] for r in sc])
        lines += [
            "",
            "error: scalars = mean absolute error of the coefficients (box [-3, 3]); "
            "fields = relative L2 of s(x).",
            f"Reference points: guessing 0 for every scalar scores MAE {zero:.3f}; the model's own misfit "
            f"at the true coefficients is {at_truth:.4f} (the floor for PSO/gradient: below it the model "
            "prefers wrong values); guessing s = 0 scores field error 1.000.",
        ]
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, kind, label in ((axes[0], "scalar", "coefficient MAE"), (axes[1], "field", "s(x) relative L2")):
        for method in sorted({s["method"] for s in summary if s["kind"] == kind}):
            pts = [(s["noise"], s["error"]) for s in summary if s["kind"] == kind and s["method"] == method]
            ax.plot([100 * n for n, _ in pts], [e for _, e in pts], "o-", label=method)
        ax.set(xlabel="noise (%)", ylabel=label, title=f"{kind} recovery", yscale="log")
        ax.legend(fontsize=8)
    names = [f"{s['kind']}: {s['method']}" for s in summary if s["noise"] == summary[0]["noise"]]
    secs = [s["seconds"] for s in summary if s["noise"] == summary[0]["noise"]]
    axes[2].barh(names, secs)
    axes[2].set(xlabel="wall time per problem (s)", xscale="log", title="time (one core)")
    axes[2].tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped XS checkpoint")
    ap.add_argument("--quick", action="store_true", help="tiny settings (< 60 s), for CI")
    ap.add_argument("--out-dir", type=Path, default=None, help="[docs/figures/pde; --quick: out/pde/quick]")
    keys = ", ".join(FULL)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=f"override a budget, e.g. --set pso_particles=512; keys: {keys}")  # fmt: skip
    args = ap.parse_args(argv)
    if args.out_dir is None:
        args.out_dir = Path("out/pde/quick" if args.quick else "docs/figures/pde")
    torch.set_num_threads(1)
    cfg = dict(QUICK if args.quick else FULL)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg or not value:
            ap.error(f"--set {item!r}: need KEY=VALUE with KEY one of {', '.join(cfg)}")
        cfg[key] = tuple(float(v) for v in value.split(",")) if key == "noise" else type(cfg[key])(value)
    start = time.perf_counter()
    model, _ = load_model(args.checkpoint)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {msg}", flush=True)

    log(f"load average {os.getloadavg()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    rows = scalar_runs(model, cfg, log) + field_runs(model, cfg, log)
    summary = summarise(rows)
    meta = dict(
        checkpoint=str(args.checkpoint or default_checkpoint().name), config=cfg, num_ics=cfg["num_ics"],
        loadavg=[round(v, 2) for v in os.getloadavg()], total_seconds=time.perf_counter() - start,
        torch_threads=torch.get_num_threads(),
    )  # fmt: skip
    stem = "inverse_quick" if args.quick else "inverse"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{stem}.json").write_text(
        json.dumps(dict(meta=meta, summary=summary, runs=rows), indent=1)
    )
    (args.out_dir / f"{stem}.md").write_text(markdown(summary, rows, meta))
    plot(summary, args.out_dir / f"{stem}.png")
    print(markdown(summary, rows, meta))


if __name__ == "__main__":
    main()
