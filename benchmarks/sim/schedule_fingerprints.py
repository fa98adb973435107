"""Fingerprints of simulated schedules: proof that a speed-up changed no decision.

    python benchmarks/sim/schedule_fingerprints.py record FILE      # before a change
    python benchmarks/sim/schedule_fingerprints.py check FILE       # after it: exit 1 on any difference

48 runs: fcfs, vllm (recompute, swap), mlfq, sj-mlfq (proactive swap, reactive swap, recompute) and srpt;
Azure-conv seeds 0 and 1 (2 req/s) and Pareto seed 0 (5 req/s); 2,000 requests on the full OPT-13B/A100
pools, and 500 requests at twice the rate on a 300-block device / 200-block host pool with the block
manager's invariants checked every step (preemption, swaps, recompute, starvation promotions). Each run's
fingerprint is a SHA-256 over its per-step schedule (request ids and token counts), every request's
first-token and finish times, and the simulator's counters and policy stats.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from foundry.serve.bench.workloads import build_workload  # noqa: E402
from foundry.sim import resolve_deployment, simulate  # noqa: E402

POLICIES = (("vllm", {}), ("vllm", {"preemption_mode": "swap"}), ("fcfs", {}), ("sj-mlfq", {}),
            ("mlfq", {"mlfq_base_quantum": 0.01}), ("sj-mlfq", {"mlfq_memory_mode": "reactive-swap"}),
            ("sj-mlfq", {"mlfq_memory_mode": "recompute"}), ("srpt", {}))
WORKLOADS = (("azure-conv", 2.0, 0), ("azure-conv", 2.0, 1), ("pareto", 5.0, 0))


def fingerprints(num_requests: int) -> dict[str, list]:
    out: dict[str, list] = {}
    for workload, rate, seed in WORKLOADS:
        for policy, options in POLICIES:
            for small in (False, True):
                w = build_workload(num_requests=num_requests // 4 if small else num_requests,
                                   rate=rate * (2 if small else 1), generator=workload, prompt_len=128,
                                   output_len=64, max_prompt_len=1024, max_output_len=512, seed=seed)
                pools = {"num_device_blocks": 300, "num_host_blocks": 200} if small else {}
                res = simulate(w, resolve_deployment("opt-13b-a100", **pools), policy, max_num_seqs=16,
                               max_num_batched_tokens=2048, record_schedule=True, check_invariants=small,
                               **options)
                h = hashlib.sha256(repr(res.schedule).encode())
                h.update(repr([(r.first_token_time, r.finish_time, r.error) for r in res.records]).encode())
                s = res.stats
                h.update(repr((s.num_steps, s.num_preemptions, s.num_swapped_out, s.num_swapped_in,
                               s.num_swapped_blocks, s.busy_time, s.end_time, s.in_system_area,
                               s.policy_stats)).encode())
                key = f"{workload}|{seed}|{policy}|{json.dumps(options, sort_keys=True)}|" \
                      f"{'small' if small else 'full'}"
                out[key] = [h.hexdigest(), s.num_steps, s.num_preemptions, s.num_swapped_out]
                print(key, out[key], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("record", "check"))
    ap.add_argument("file", type=Path)
    ap.add_argument("--num-requests", type=int, default=2000)
    args = ap.parse_args()
    got = fingerprints(args.num_requests)
    if args.mode == "record":
        args.file.write_text(json.dumps(got, indent=1) + "\n")
        return
    want = json.loads(args.file.read_text())
    diff = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
    print(f"{len(got) - len(diff)}/{len(want)} runs identical" + (f"; differ: {diff}" if diff else ""))
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main()
