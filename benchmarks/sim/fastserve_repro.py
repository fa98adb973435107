"""FastServe in simulation: FCFS (Orca-like) vs vLLM vs MLFQ vs skip-join MLFQ vs SRPT oracle, on the
DistServe OPT-13B / A100 cost model, batch 16 and 2048 tokens per step (FastServe's NSDI artifact
settings, serving reference §2.6), 58k-token device KV pool and 56 GB of host swap unless limited.

    python benchmarks/sim/fastserve_repro.py --output-dir DIR [--num-requests 1000] [--quick]

Scenarios (each a sweep; CSV + PNG per scenario in DIR, and a markdown summary on stdout):
- pareto-rate: log-normal prompts (median 128, <= 512), Pareto outputs (median 64, tail index 1.5,
  <= 1536), Poisson arrivals, rate sweep;
- pareto-cv: the same at 5 req/s, Gamma arrivals with CV 1..4 (burstiness);
- azure-conv-rate: Azure LLM trace 2023 conversation lengths (prompt <= 1024, output <= 1024, so
  total <= 2048 as in the artifact's ShareGPT filter), rate sweep;
- pareto-memory: pareto at rates 3..6 with the device pool cut to 300 blocks = 4,800 tokens (memory
  bound: FCFS reserves each request's prompt + max output, the others preempt and swap).
Per point: mean and P99 JCT, mean s/token, and SLO attainment at the artifact's middle SLO
(TTFT <= 3.1 s and E2E / output tokens <= 0.3 s).
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from foundry.serve.bench.workloads import build_workload  # noqa: E402
from foundry.sim import resolve_deployment, simulate  # noqa: E402
from foundry.sim.sweep import plot  # noqa: E402

POLICIES = ("fcfs", "vllm", "mlfq", "sj-mlfq", "srpt")
SLO_TTFT_S, SLO_S_PER_TOKEN = 3.1, 0.3


def scenarios(quick: bool) -> dict[str, dict]:
    pareto = {"generator": "pareto", "prompt_len": 128, "output_len": 64, "max_prompt_len": 512,
              "max_output_len": 1536}
    azure = {"generator": "azure-conv", "max_prompt_len": 1024, "max_output_len": 1024}
    rates = (4, 6, 7) if quick else (2, 4, 5, 6, 7, 8)
    cvs = (1, 4) if quick else (1, 2, 3, 4)
    azure_rates = (1, 2) if quick else (0.5, 1, 1.5, 2, 2.5, 3)
    memory_rates = (4, 5) if quick else (3, 4, 5, 6)
    return {
        "pareto-rate": {"lengths": pareto, "points": [(r, 1.0) for r in rates]},
        "pareto-cv": {"lengths": pareto, "points": [(5.0, cv) for cv in cvs]},
        "azure-conv-rate": {"lengths": azure, "points": [(r, 1.0) for r in azure_rates]},
        "pareto-memory": {"lengths": pareto, "points": [(r, 1.0) for r in memory_rates],
                          "num_device_blocks": 300},
    }


def run(args: argparse.Namespace) -> None:
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print("| scenario | rate | CV | FCFS mean / P99 JCT (s) | sj-mlfq mean / P99 JCT (s) | mean JCT gain "
          "| P99 gain | s/token FCFS → sj-mlfq | SRPT mean JCT | SLO attain. FCFS / sj-mlfq |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    wanted = args.scenarios.split(",") if args.scenarios else None
    for name, sc in scenarios(args.quick).items():
        if wanted is not None and name not in wanted:
            continue
        dep = resolve_deployment("opt-13b-a100", num_device_blocks=sc.get("num_device_blocks"))
        rows = []
        for rate, cv in sc["points"]:
            w = build_workload(num_requests=args.num_requests, rate=rate, cv=cv, seed=args.seed,
                               **sc["lengths"])
            by_policy = {}
            for policy in POLICIES:
                res = simulate(w, dep, policy, max_num_seqs=16, max_num_batched_tokens=2048)
                r = res.summary()
                ok = [x for x in res.records if x.ok]
                slo = sum(x.ttft <= SLO_TTFT_S and x.e2e / x.num_output_tokens <= SLO_S_PER_TOKEN for x in ok)
                row = {"policy": policy, "rate": rate, "cv": cv, "num_completed": r.num_completed,
                       "request_throughput": r.request_throughput, "ttft_mean": r.ttft_s.mean,
                       "ttft_p99": r.ttft_s.p99, "jct_mean": r.e2e_s.mean, "jct_p50": r.e2e_s.p50,
                       "jct_p95": r.e2e_s.p95, "jct_p99": r.e2e_s.p99,
                       "s_per_token_mean": r.s_per_output_token.mean,
                       "s_per_token_p95": r.s_per_output_token.p95, "slo_attainment": slo / len(ok),
                       "num_preemptions": res.stats.num_preemptions,
                       "num_swapped_out": res.stats.num_swapped_out, "busy_time_s": res.stats.busy_time,
                       "wall_time_s": res.stats.wall_time}
                rows.append(row)
                by_policy[policy] = row
            f, s, o = by_policy["fcfs"], by_policy["sj-mlfq"], by_policy["srpt"]
            print(f"| {name} | {rate:g} | {cv:g} | {f['jct_mean']:.2f} / {f['jct_p99']:.1f} | "
                  f"{s['jct_mean']:.2f} / {s['jct_p99']:.1f} | {f['jct_mean'] / s['jct_mean']:.2f}× | "
                  f"{f['jct_p99'] / s['jct_p99']:.2f}× | "
                  f"{f['s_per_token_mean']:.3f} → {s['s_per_token_mean']:.3f} | {o['jct_mean']:.2f} | "
                  f"{f['slo_attainment']:.0%} / {s['slo_attainment']:.0%} |", flush=True)
        with (out_dir / f"{name}.csv").open("w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
        plot(rows, out_dir / f"{name}.png", f"{name}: OPT-13B/A100 (DistServe fit), batch 16, 2048 tokens, "
                                            f"{args.num_requests} requests, seed {args.seed}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--num-requests", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="fewer points")
    ap.add_argument("--scenarios", default="", help="comma-separated subset (default: all)")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
