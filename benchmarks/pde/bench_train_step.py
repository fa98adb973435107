"""Training step time (forward + backward + Adam) of PDEformer sizes, and today's step vs the fast one.

    OMP_NUM_THREADS=1 python benchmarks/pde/bench_train_step.py --sizes XS,S --points 1024,2048
    OMP_NUM_THREADS=1 python benchmarks/pde/bench_train_step.py --compare      # XS, batch 16, 1,024 points

Random graphs from the generator's family, batch 16 by default; reports the median of the
timed steps after warm-up steps, and the device used. ``--compare`` times, side by side in one run
and on the same random batches (variants interleaved step by step, so a busy machine slows all
alike): the padded step ("before": 64 graph nodes, every function slot encoded, 128 function
points), the exact step (padding trimmed per batch, empty function slots skipped), and the exact
step with the function encoder on ``--function-points`` random points.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import types

import numpy as np
import torch

from foundry.pde.data.dataset import graph_to_tensors, trim_padding
from foundry.pde.data.generate import GRAPH_KEYS
from foundry.pde.data.sinus import params_to_pde, sample_params
from foundry.pde.graph.dag import build_graph
from foundry.pde.layers.poly_inr import PolyINR
from foundry.pde.losses.nrmse import normalized_rmse
from foundry.pde.models.pdeformer import build_model, num_parameters
from foundry.pde.training.train import select_device


def padded_poly_inr_forward(self, z, scales=None, shifts=None):
    """PolyINR.forward as it was before the exact speed-ups (h_0 = 1 multiplied in, clamp, separate
    scale and shift passes): the "before" variant runs it, so today's step is timed as it was."""
    h = 1.0
    for i in range(self.num_hidden):
        h = self.denses[i](h * self.affines[i](z))
        if scales is not None:
            h = h * (1 + scales[i].unsqueeze(-2))
        if shifts is not None:
            h = h + shifts[i].unsqueeze(-2)
        h = torch.clamp(torch.nn.functional.leaky_relu(h, 0.2), -256.0, 256.0)
    return self.out(h)


def set_before(model: torch.nn.Module, before: bool) -> None:
    """Switch ``model`` between the old (padded) computation and the exact fast one."""
    model.skip_empty_functions = not before
    for m in model.modules():
        if isinstance(m, PolyINR):
            if before:
                m.forward = types.MethodType(padded_poly_inr_forward, m)
            else:
                m.__dict__.pop("forward", None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare(args: argparse.Namespace, device: torch.device) -> None:
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 128, endpoint=False)
    pool = [build_graph(params_to_pde(sample_params(rng, x), x), 3) for _ in range(256)]
    torch.manual_seed(0)
    model = build_model("XS").to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    variants = (
        "before (padded)",
        "exact (trimmed, empty fns skipped, INR fused)",
        f"+ {args.function_points} fn points",
    )
    compiled = None
    if args.compile:  # same weights and optimizer, a compiled forward (dynamic: trimmed sizes vary)
        variants += (f"+ {args.function_points} fn points, torch.compile",)
        compiled = torch.compile(model, dynamic=True)
    times: dict[str, list[float]] = {v: [] for v in variants}
    nodes: list[int] = []
    for i in range(args.warmup + args.steps):
        idx = rng.integers(0, len(pool), args.batch)
        arrays = {k: np.stack([getattr(pool[j], k) for j in idx]) for k in GRAPH_KEYS}
        coords = torch.rand(args.batch, args.compare_points, 2, device=device)
        labels = torch.randn(args.batch, args.compare_points, device=device)
        pts = np.sort(rng.choice(128, args.function_points, replace=False))
        for v in variants:
            start = time.perf_counter()
            if v == variants[0]:
                set_before(model, True)
                graph = graph_to_tensors(arrays, device)
            else:
                set_before(model, False)
                g = trim_padding(arrays, model.config.num_branches)
                if v in variants[2:]:
                    g["function_values"] = g["function_values"][:, :, pts]
                graph = graph_to_tensors(g, device)
                nodes.append(g["node_type"].shape[1])
            fwd = model
            if compiled is not None and v == variants[-1]:
                model.skip_empty_functions = False  # boolean indexing would break the compiled graph
                fwd = compiled
            loss = normalized_rmse(fwd(graph, coords), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            _sync(device)
            if i >= args.warmup:
                times[v].append(time.perf_counter() - start)
    base = statistics.median(times[variants[0]])
    print(
        f"XS, batch {args.batch}, {args.compare_points} points, {args.steps} steps each (median), nodes "
        f"per trimmed batch {min(nodes)}-{max(nodes)} of 64"
    )
    for v in variants:
        med = statistics.median(times[v])
        print(f"  {v:40s} {1e3 * med:7.1f} ms/step  speed-up {base / med:4.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="XS,S")
    ap.add_argument("--points", default="1024,2048")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compare", action="store_true", help="before vs exact vs fewer function points (XS)")
    ap.add_argument("--compare-points", type=int, default=1024)
    ap.add_argument("--function-points", type=int, default=64)
    ap.add_argument("--compile", action="store_true", help="with --compare: also time a torch.compile'd step")
    args = ap.parse_args()
    device = select_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(f"device {device}, threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    if args.compare:
        compare(args, device)
        return
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 128, endpoint=False)
    for size in args.sizes.split(","):
        torch.manual_seed(0)
        model = build_model(size).to(device)
        pdes = [params_to_pde(sample_params(rng, x), x) for _ in range(args.batch)]
        graphs = [build_graph(p, model.config.num_mod) for p in pdes]
        graph = graph_to_tensors({k: np.stack([getattr(g, k) for g in graphs]) for k in GRAPH_KEYS}, device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        for q in (int(p) for p in args.points.split(",")):
            coords = torch.rand(args.batch, q, 2, device=device)
            labels = torch.randn(args.batch, q, device=device)
            times = []
            for i in range(args.warmup + args.steps):
                _sync(device)
                start = time.perf_counter()
                loss = normalized_rmse(model(graph, coords), labels)
                opt.zero_grad()
                loss.backward()
                opt.step()
                _sync(device)
                if i >= args.warmup:
                    times.append(time.perf_counter() - start)
            print(
                f"{size:3s} ({num_parameters(model) / 1e6:.2f} M params), batch {args.batch}, {q} points: "
                f"{1e3 * statistics.median(times):.0f} ms/step"
            )


if __name__ == "__main__":
    main()
