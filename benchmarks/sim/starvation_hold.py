"""MLFQ's starvation promotion: the paper's rule vs held promotions, at the loaded points of the reproduction.

    python benchmarks/sim/starvation_hold.py [--num-requests 1000]

Same settings as `fastserve_repro.py` (DistServe OPT-13B/A100 model, batch 16, 2,048 tokens, seed 0):
Pareto outputs near saturation (7, 8 req/s), the memory-bound pool (300 blocks; 5, 6 req/s) and Azure
conversation lengths (2.5, 3 req/s). For each point: FCFS, and sj-mlfq with `starvation_hold` = off
(the paper: front of level 0, demoted as usual), quantum (the default) and finish. Prints a markdown
table: mean / P99 JCT, preemptions and promotions.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from foundry.serve.bench.workloads import build_workload  # noqa: E402
from foundry.serve.policies import MLFQPolicy  # noqa: E402
from foundry.sim import resolve_deployment, simulate  # noqa: E402

PARETO = {"generator": "pareto", "prompt_len": 128, "output_len": 64, "max_prompt_len": 512,
          "max_output_len": 1536}
AZURE = {"generator": "azure-conv", "max_prompt_len": 1024, "max_output_len": 1024}
POINTS = [("pareto", PARETO, 7, None), ("pareto", PARETO, 8, None), ("pareto-memory", PARETO, 5, 300),
          ("pareto-memory", PARETO, 6, 300), ("azure-conv", AZURE, 2.5, None), ("azure-conv", AZURE, 3, None)]
HOLDS = ("off", "quantum", "finish")


def jct(res) -> tuple[float, float]:
    e = sorted(r.e2e for r in res.records)
    return sum(e) / len(e), e[min(len(e) - 1, int(0.99 * len(e)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-requests", type=int, default=1000)
    args = ap.parse_args()
    heads = [f"sj-mlfq hold={h}: mean / P99 JCT (s), preemptions, promotions" for h in HOLDS]
    print("| scenario | rate | FCFS mean / P99 JCT (s) | " + " | ".join(heads) + " |")
    print("|---|---|---|" + "---|" * len(HOLDS))
    for name, lengths, rate, blocks in POINTS:
        dep = resolve_deployment("opt-13b-a100", num_device_blocks=blocks)
        w = build_workload(num_requests=args.num_requests, rate=rate, seed=0, **lengths)
        mean, p99 = jct(simulate(w, dep, "fcfs"))
        cells = [f"{mean:.2f} / {p99:.1f}"]
        prefill_time = dep.cost_model.to_profile().prefill_time
        for hold in HOLDS:
            policy = MLFQPolicy(16, 2048, base_quantum=0.010, skip_join=True, prefill_time=prefill_time,
                                starvation_hold=hold)
            res = simulate(w, dep, policy)
            mean, p99 = jct(res)
            cells.append(f"{mean:.2f} / {p99:.1f}, {res.stats.num_preemptions:,}, "
                         f"{res.stats.policy_stats['num_promotions']:,}")
        print(f"| {name} | {rate:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
