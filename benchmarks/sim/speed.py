"""How fast the simulator runs: N requests (default 100k) through one policy on one core.

    python benchmarks/sim/speed.py [--num-requests 100000] [--policy vllm] [--json]

Workload: Azure-conv-shaped lengths (or `--workload pareto`: prompt median 128, output median 64)
clipped to prompt <= 1024 and output <= 512 (so requests fit OPT-13B's 2048 context), Poisson at
`--rate`, OPT-13B/A100 (DistServe) cost model, batch 16 /
2048 tokens. Reports wall and process CPU time (on a shared machine the CPU time is the steadier of
the two), the load average before and after, simulated steps and steps per second; the goal is 100k
requests < 60 s on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from foundry.serve.bench.workloads import build_workload  # noqa: E402
from foundry.sim import resolve_deployment, simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-requests", type=int, default=100_000)
    ap.add_argument("--policy", default="vllm")
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--cost", default="opt-13b-a100")
    ap.add_argument("--workload", default="azure-conv", help="a bench generator (pareto: median 128 / 64)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t = time.perf_counter()
    w = build_workload(num_requests=args.num_requests, rate=args.rate, generator=args.workload,
                       prompt_len=128, output_len=64, max_prompt_len=1024, max_output_len=512, seed=0)
    build_s = time.perf_counter() - t
    dep = resolve_deployment(args.cost)
    load_before = os.getloadavg()[0]
    t, cpu = time.perf_counter(), time.process_time()
    res = simulate(w, dep, args.policy, max_num_seqs=16, max_num_batched_tokens=2048)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    done = sum(r.ok for r in res.records)
    out = {"num_requests": len(w), "num_completed": done, "policy": args.policy, "rate": args.rate,
           "workload": args.workload,
           "cost": args.cost, "num_steps": res.stats.num_steps, "virtual_time_s": res.stats.end_time,
           "wall_s": wall, "cpu_s": cpu, "load_average": [load_before, os.getloadavg()[0]],
           "steps_per_s": res.stats.num_steps / wall, "workload_build_s": build_s,
           "tokens": sum(s.output_len for s in w.requests)}
    if args.json:
        print(json.dumps(out))
        return
    print(f"{done}/{len(w)} requests ({args.policy}, {args.rate} req/s): {res.stats.num_steps} steps, "
          f"{res.stats.end_time:.0f} s simulated in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"({out['steps_per_s']:.0f} steps/s; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}); "
          f"workload built in {build_s:.1f} s")


if __name__ == "__main__":
    main()
