"""Per-sample cost of PDEformer inference on the full grid vs the numerical solver, same CPU.

Model: B random sinus0 PDEs (graphs prebuilt; graph building timed separately), encode + INR
decode on the full 101 x 128 (t, x) grid, for B in --batch-sizes. Solver: the batched Fourier
IMEX-SBDF2 solver (`solve_periodic`, dt 2e-4 as in data generation, 101 x 128 output) at its
natural batch (the generator's chunk of 64) and at batch 1. Reports samples/s and the ratio
solver-time / model-time per sample against the >= 100x goal of issue #7.

    OMP_NUM_THREADS=1 python benchmarks/pde/speed.py [--checkpoint CKPT] [--quick]

Writes speed.json, .md and .png into --out-dir (default docs/figures/pde); --quick writes
speed_quick.* into out/pde/quick (ignored): a quick run never touches the committed results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from foundry.pde.data.dataset import graph_to_tensors
from foundry.pde.data.sinus import params_to_pde, sample_params
from foundry.pde.data.spectral_solver import solve_periodic
from foundry.pde.graph.dag import GRAPH_KEYS, build_graph
from foundry.pde.inference import default_checkpoint, load_model

NUM_T, NUM_X, DT = 101, 128, 2e-4
POINT_CHUNK = 4096  # INR query points per sample per decode call (bounds memory at large batches)


def draw(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.0, 1.0, NUM_X, endpoint=False)
    return [sample_params(rng, x) for _ in range(n)], x


def timed(fn, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` (CPU seconds, wall seconds) of ``fn()``.

    Both sides run on one thread, so this process's CPU time is what an idle core would take;
    on a shared, loaded host the wall time also counts the time other processes held the core.
    """
    best = (np.inf, np.inf)
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        fn()
        best = min(best, (time.process_time() - cpu, time.perf_counter() - wall))
    return best


def model_fn(model, graphs: dict, coords: torch.Tensor):
    """Encode + decode on the full grid for one batch."""

    @torch.no_grad()
    def run() -> None:
        mods = model.encode(graphs)
        b = mods.shape[0]
        for i in range(0, coords.shape[0], POINT_CHUNK):
            model.decode(mods, coords[i : i + POINT_CHUNK][None].expand(b, -1, -1))

    return run


def solver_fn(params: list):
    """One batched solve of the given members."""

    def stack(name):
        return np.stack([np.asarray(getattr(p, name)) for p in params])

    args = [stack(k) for k in ("u0", "c0", "c1", "source", "kappa")]
    return lambda: solve_periodic(*args, num_t=NUM_T, dt=DT)


def measure(what: str, batch: int, fn, repeats: int) -> dict:
    cpu, wall = timed(fn, repeats)
    row = dict(what=what, batch=batch, cpu_seconds=cpu, wall_seconds=wall, ms_per_sample=1e3 * cpu / batch,
               wall_ms_per_sample=1e3 * wall / batch, samples_per_s=batch / cpu)  # fmt: skip
    ms, wall_ms = row["ms_per_sample"], row["wall_ms_per_sample"]
    print(f"{what:6s} B={batch:4d}: {ms:8.2f} CPU ms/sample ({wall_ms:.2f} wall)", flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped XS checkpoint")
    ap.add_argument("--quick", action="store_true", help="tiny settings (< 60 s), for CI")
    ap.add_argument("--batch-sizes", default="1,16,64,256", help="model batch sizes")
    ap.add_argument("--solver-batch", type=int, default=64, help="the solver's batch (generator chunk)")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats after one warm-up (best kept)")
    ap.add_argument("--out-dir", type=Path, default=None, help="[docs/figures/pde; --quick: out/pde/quick]")
    args = ap.parse_args(argv)
    if args.out_dir is None:
        args.out_dir = Path("out/pde/quick" if args.quick else "docs/figures/pde")
    torch.set_num_threads(1)
    batches = [1, 4] if args.quick else [int(b) for b in args.batch_sizes.split(",")]
    solver_batches = [1, 4] if args.quick else [1, args.solver_batch]
    repeats = 1 if args.quick else args.repeats
    load_start = [round(v, 2) for v in os.getloadavg()]
    print(f"load average {load_start}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)

    model, _ = load_model(args.checkpoint)
    params, x = draw(max(batches + solver_batches), seed=0)
    start = time.perf_counter()
    graph_list = [build_graph(params_to_pde(p, x), model.config.num_mod) for p in params]
    graph_ms = 1e3 * (time.perf_counter() - start) / len(params)
    t = np.linspace(0.0, 1.0, NUM_T)
    tt, xx = np.meshgrid(t, x, indexing="ij")
    coords = torch.as_tensor(np.stack([tt, xx], -1).reshape(-1, 2), dtype=torch.float32)

    rows = []
    for b in batches:
        graphs = graph_to_tensors({k: np.stack([getattr(g, k) for g in graph_list[:b]]) for k in GRAPH_KEYS})
        run = model_fn(model, graphs, coords)
        run()  # warm-up
        rows.append(measure("model", b, run, repeats))
    for b in solver_batches:
        rows.append(measure("solver", b, solver_fn(params[:b]), repeats))

    best_solver = min(r["ms_per_sample"] for r in rows if r["what"] == "solver")
    for r in rows:
        if r["what"] == "model":
            r["speedup_vs_best_solver"] = best_solver / r["ms_per_sample"]
    meta = dict(
        checkpoint=str(args.checkpoint or default_checkpoint().name), grid=[NUM_T, NUM_X], solver_dt=DT,
        graph_build_ms_per_sample=graph_ms, loadavg_start=load_start,
        loadavg_end=[round(v, 2) for v in os.getloadavg()], cpu=platform.processor() or platform.machine(),
        torch_threads=torch.get_num_threads(), device="cpu", quick=args.quick,
    )  # fmt: skip
    best_model = max((r for r in rows if r["what"] == "model"), key=lambda r: r["speedup_vs_best_solver"])
    lines = [
        f"CPU, one thread; load average {meta['loadavg_start']} at start, {meta['loadavg_end']} at end; "
        f"checkpoint `{meta['checkpoint']}`; full grid {NUM_T} x {NUM_X}.",
        "",
        "| what | batch | CPU ms / sample | wall ms / sample | samples / s (CPU) | model speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        sp = f"{r['speedup_vs_best_solver']:.2f}x" if r["what"] == "model" else "-"
        lines.append(
            f"| {r['what']} | {r['batch']} | {r['ms_per_sample']:.2f} | {r['wall_ms_per_sample']:.2f} | "
            f"{r['samples_per_s']:.1f} | {sp} |"
        )
    lines += [
        "",
        "Speed-ups compare CPU time per sample (this process's, one thread) with the best solver row; "
        "other jobs on a shared host inflate it far less than wall time.",
        f"Graph building (symbolic PDE -> arrays, not in the model rows): {graph_ms:.2f} ms/sample. "
        f"Best model speed-up {best_model['speedup_vs_best_solver']:.2f}x at batch {best_model['batch']}; "
        f"goal >= 100x: {'met' if best_model['speedup_vs_best_solver'] >= 100 else 'NOT met'}.",
    ]
    md = "\n".join(lines) + "\n"
    stem = "speed_quick" if args.quick else "speed"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{stem}.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    (args.out_dir / f"{stem}.md").write_text(md)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for what, marker in (("model", "o-"), ("solver", "s--")):
        pts = [(r["batch"], r["ms_per_sample"]) for r in rows if r["what"] == what]
        ax.plot([b for b, _ in pts], [m for _, m in pts], marker, label=what)
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="CPU ms per sample (101 x 128 grid)",
           title="PDEformer XS vs solver, one CPU thread")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out_dir / f"{stem}.png", dpi=110)
    plt.close(fig)
    print(md)


if __name__ == "__main__":
    main()
