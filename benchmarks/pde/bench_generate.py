"""Data-generation throughput of `foundry pde generate`, one worker (= one core).

    OMP_NUM_THREADS=1 python benchmarks/pde/bench_generate.py --chunks 2

Prints accepted samples/s and candidates/s for the periodic (Fourier) and robin (finite
difference) families at the default resolution (128 x 101, dt = 2e-4).
"""

from __future__ import annotations

import argparse
import os
import time

from foundry.pde.data.generate import GenerateConfig, solve_chunk


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=2, help="chunks of 64 candidates per family")
    ap.add_argument("--num-x", type=int, default=128)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for boundary in ("periodic", "robin"):
        cfg = GenerateConfig(num_samples=1, num_x=args.num_x, boundary=boundary)
        start, accepted = time.perf_counter(), 0
        for i in range(args.chunks):
            accepted += len(solve_chunk(cfg, i)["u"])
        sec = time.perf_counter() - start
        cand = args.chunks * cfg.chunk_size
        print(
            f"{boundary:8s}: {accepted}/{cand} accepted, {accepted / sec:.1f} samples/s/core "
            f"({cand / sec:.1f} candidates/s/core, {sec:.1f} s)"
        )


if __name__ == "__main__":
    main()
