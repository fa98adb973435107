"""Training step time (forward + backward + Adam) of PDEformer sizes.

    OMP_NUM_THREADS=1 python benchmarks/pde/bench_train_step.py --sizes XS,S --points 1024,2048

Random graphs from the generator's family, batch 16 by default; reports the median of the
timed steps after warm-up steps, and the device used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from foundry.pde.data.dataset import graph_to_tensors
from foundry.pde.data.generate import GRAPH_KEYS
from foundry.pde.data.sinus import params_to_pde, sample_params
from foundry.pde.graph.dag import build_graph
from foundry.pde.losses.nrmse import normalized_rmse
from foundry.pde.models.pdeformer import build_model, num_parameters
from foundry.pde.training.train import select_device


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="XS,S")
    ap.add_argument("--points", default="1024,2048")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = select_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 128, endpoint=False)
    print(f"device {device}, threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
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
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                loss = normalized_rmse(model(graph, coords), labels)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= args.warmup:
                    times.append(time.perf_counter() - start)
            print(
                f"{size:3s} ({num_parameters(model) / 1e6:.2f} M params), batch {args.batch}, {q} points: "
                f"{1e3 * statistics.median(times):.0f} ms/step"
            )


if __name__ == "__main__":
    main()
