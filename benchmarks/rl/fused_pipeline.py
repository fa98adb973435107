"""RLHFuse/FlexFusion intra-stage fusion on the 12 published configurations: seq-1F1B makespan, the fused
schedule found by greedy + simulated annealing within a CPU budget, the lower bound, bubble ratio and
peak activation memory (units: activations held on a node, +1 per forward, -1 per backward).

    OMP_NUM_THREADS=1 python benchmarks/rl/fused_pipeline.py [--budget-s 20] [--exps 0,2,5]
        [--seed 0] [--json]

Each configuration runs on one core for at most --budget-s CPU seconds (it stops early at the bound).
"""

from __future__ import annotations

import argparse
import json

from foundry.rl.fused import PUBLISHED, check_schedule, search, seq_1f1b_makespan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=20.0)
    ap.add_argument("--exps", default=",".join(str(i) for i in range(len(PUBLISHED))))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for exp in (int(x) for x in args.exps.split(",")):
        cfg, seq_pub, fused_pub, lb_pub = PUBLISHED[exp]
        res = search(cfg, budget_s=args.budget_s, seed=args.seed)
        check_schedule(cfg, res.tasks(cfg))
        row = {
            "exp": exp,
            "seq_1f1b": seq_1f1b_makespan(cfg),
            "greedy": res.greedy_makespan,
            "fused": res.makespan,
            "lower_bound": res.lower_bound,
            "cpu_s": round(res.cpu_s, 2),
            "bubble": round(res.bubble, 4),
            "peak_memory": res.peak_memory,
            "iterations": res.iterations,
            "published_fused": fused_pub,
            "published_lb": lb_pub,
        }
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(
                f"exp {exp:2d}  seq-1F1B {row['seq_1f1b']:4d}  greedy {row['greedy']:4d}"
                f"  fused {row['fused']:4d} (published {fused_pub})  LB {row['lower_bound']:4d}"
                f"  bubble {row['bubble']:.2%}"
                f"  peak mem {row['peak_memory']:3d}  {row['cpu_s']:.1f} CPU-s  {row['iterations']} it",
                flush=True,
            )


if __name__ == "__main__":
    main()
