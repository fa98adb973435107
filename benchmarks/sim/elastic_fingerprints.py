"""Fingerprints of simulated elastic schedules: proof that a scheduler speed-up changed no decision.

    python benchmarks/sim/elastic_fingerprints.py record FILE      # before a change
    python benchmarks/sim/elastic_fingerprints.py check FILE       # after it: exit 1 on any difference
    python benchmarks/sim/elastic_fingerprints.py check FILE --only sharegpt   # cases whose key has it

Cases (`CASES`): LoongServe's scheduler on 1, 2, 3, 4 and 6 TP2-like instances (6 exceeds the fitted SP
degrees, so the cost model's clamping is exercised), with the worst-case and the optimistic admission
estimate, and `StaticSPScheduler` with groups of 4, 2 and 1 and on one TP8 instance; ShareGPT-, LEval-,
LV-Eval-, Mixed- and Zipf-like workloads at a light and an overload rate (seed 0, and seed 1 for some),
plus small-KV clusters where decodes pause and prefills migrate. Each case's fingerprint is a SHA-256
over every `IterationPlan` in order (its repr: batches, rings, KV plans, masters, migrations, pauses),
every request's first-token and finish times, and the cluster's counters. The fast test
(`tests/sim/elastic/test_fingerprints.py`) checks the cases marked ``fast`` against the JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from foundry.serve.bench.workloads import RequestSpec, Workload  # noqa: E402
from foundry.serve.elastic.cost_model import DecodeCoeffs, ESPCostModel, PrefillCoeffs  # noqa: E402
from foundry.serve.elastic.scheduler import LoongServeConfig, LoongServeScheduler
from foundry.serve.elastic.static_sp import StaticSPScheduler  # noqa: E402
from foundry.sim.elastic.calibration import KV_CAPACITY, LWM7BA800, esp_cost_model  # noqa: E402
from foundry.sim.elastic.cluster import ElasticCluster  # noqa: E402
from foundry.sim.elastic.systems import MAX_NUM_OOE  # noqa: E402
from foundry.sim.elastic.workloads import dataset_workload  # noqa: E402

MAX_NUM_SEQS = {"sharegpt": 1024, "leval": 256, "lveval": 256, "mixed": 1024, "zipf": 1024}


@dataclass(frozen=True)
class Case:
    dataset: str
    rate: float
    n: int
    scheduler: str  # "loongserve" or "static-G" (groups of G instances)
    instances: int
    tp: int = 2
    capacity: int | None = None  # KV tokens per instance (None: the calibrated capacity of TP `tp`)
    seed: int = 0
    admission: int | None = None  # LoongServeConfig.admission_max_new_tokens
    fast: bool = False  # in the fast test
    toy: int = 0  # > 0: this many random tiny clusters and workloads instead (`toy_runs`)

    @property
    def key(self) -> str:
        cap = self.capacity or KV_CAPACITY[self.tp]
        adm = "" if self.admission is None else f"|adm{self.admission}"
        if self.toy:
            return f"toy|{self.toy} runs|s{self.seed}|{self.scheduler}{adm}"
        return (f"{self.dataset}|{self.rate:g}rps|n{self.n}|s{self.seed}|{self.scheduler}|"
                f"{self.instances}xTP{self.tp}@{cap}{adm}")


CASES: tuple[Case, ...] = (
    # ShareGPT-like: light and overload, 1-6 instances, optimistic admission, small KV (pauses)
    Case("sharegpt", 5.0, 300, "loongserve", 4),
    Case("sharegpt", 200.0, 600, "loongserve", 4),
    Case("sharegpt", 2000.0, 400, "loongserve", 4),
    Case("sharegpt", 200.0, 300, "loongserve", 1),
    Case("sharegpt", 200.0, 300, "loongserve", 2, seed=1),
    Case("sharegpt", 200.0, 300, "loongserve", 3),
    Case("sharegpt", 200.0, 300, "loongserve", 6),
    Case("sharegpt", 100.0, 300, "loongserve", 4, admission=256),
    Case("sharegpt", 100.0, 300, "loongserve", 4, capacity=20_000),
    Case("sharegpt", 100.0, 300, "loongserve", 3, capacity=12_000, admission=128, seed=1),
    Case("sharegpt", 200.0, 400, "static-4", 4),
    Case("sharegpt", 200.0, 400, "static-1", 4),
    Case("sharegpt", 100.0, 300, "static-2", 4, capacity=15_000),
    Case("sharegpt", 200.0, 300, "static-1", 1, tp=8),
    # LEval-like
    Case("leval", 1.0, 150, "loongserve", 4),
    Case("leval", 20.0, 200, "loongserve", 4),
    Case("leval", 20.0, 150, "loongserve", 2, seed=1),
    Case("leval", 20.0, 150, "static-4", 4),
    # LV-Eval-like (prompts up to ~470k tokens: spread over instances)
    Case("lveval", 0.05, 40, "loongserve", 4),
    Case("lveval", 1.0, 60, "loongserve", 4),
    Case("lveval", 1.0, 40, "loongserve", 3),
    Case("lveval", 1.0, 40, "static-4", 4),
    # Mixed
    Case("mixed", 0.3, 100, "loongserve", 4),
    Case("mixed", 5.0, 150, "loongserve", 4),
    Case("mixed", 5.0, 100, "loongserve", 6, seed=1),
    Case("mixed", 5.0, 100, "loongserve", 4, admission=256),
    Case("mixed", 5.0, 100, "static-4", 4),
    Case("mixed", 5.0, 100, "static-2", 4),
    # Zipf
    Case("zipf-1.0", 3.0, 200, "loongserve", 4),
    Case("zipf-1.2", 1.0, 200, "loongserve", 4),
    Case("zipf-1.4", 30.0, 300, "loongserve", 4),
    Case("zipf-1.2", 10.0, 200, "static-4", 4),
    Case("zipf-1.2", 10.0, 200, "static-1", 4),
    Case("zipf-1.2", 10.0, 200, "static-1", 1, tp=8),
    # the fast test's cases: small runs of each kind
    Case("sharegpt", 2000.0, 150, "loongserve", 4, fast=True),
    Case("sharegpt", 100.0, 120, "loongserve", 4, capacity=20_000, fast=True),
    Case("sharegpt", 200.0, 150, "static-1", 4, fast=True),
    Case("leval", 20.0, 80, "loongserve", 3, fast=True),
    Case("lveval", 1.0, 30, "loongserve", 4, fast=True),
    Case("mixed", 5.0, 60, "loongserve", 4, admission=256, fast=True),
    Case("zipf-1.2", 10.0, 60, "static-4", 4, fast=True),
    # tiny random clusters with cheap migrations (at paper scale LoongServe's scale-down migrations are rare)
    Case("toy", 0, 0, "loongserve", 0, toy=60, admission=2, fast=True),
    Case("toy", 0, 0, "loongserve", 0, toy=60, seed=1, fast=True),
    Case("toy", 0, 0, "static-2", 0, toy=40, seed=2, fast=True),
)

# A_k grows with the ring, B_k and C_k shrink; migrations nearly free (times in seconds)
TOY_COST = ESPCostModel(prefill={k: PrefillCoeffs(0.002 * k, 1e-4 / k, 2e-6 / k) for k in range(1, 5)},
                        decode=DecodeCoeffs(0.01, 1e-5, 1e-4), kv_bytes_per_token=1e-9, bandwidth=1e9)


def toy_runs(case: Case) -> list[tuple[ElasticCluster, Workload]]:
    """`case.toy` clusters of 1-4 (static: 2 or 4) instances of 40-120 KV slots, 5-25 requests each."""
    rng = random.Random(case.seed)
    out = []
    for _ in range(case.toy):
        if case.scheduler == "loongserve":
            m = rng.randint(1, 4)
            sched = LoongServeScheduler(TOY_COST, LoongServeConfig(
                max_num_ooe=rng.choice([0, 1, 2, 8]),
                min_comp_bound_decoding_batch_size=rng.choice([1, 2, 4]),
                max_wait_tokens=rng.choice([1, 3, 10]), admission_max_new_tokens=case.admission))
        else:
            g = int(case.scheduler.removeprefix("static-"))
            m = g * rng.randint(1, 2)
            sched = StaticSPScheduler(TOY_COST, g, max_wait_tokens=rng.choice([1, 3, 10]),
                                      admission_max_new_tokens=case.admission)
        caps = [rng.randint(40, 120) for _ in range(m)]
        bound = (sum(caps) if case.scheduler == "loongserve"
                 else min(sum(caps[i:i + g]) for i in range(0, m, g)))
        rate, t, reqs = rng.choice([5.0, 50.0, 500.0]), 0.0, []
        for _ in range(rng.randint(5, 25)):
            t += rng.expovariate(rate)
            prompt = rng.randint(1, max(1, int(bound * 0.8)))
            reqs.append(RequestSpec(t, prompt, rng.randint(1, max(1, min(40, bound - prompt)))))
        out.append((ElasticCluster(sched, TOY_COST, caps, max_request_tokens=bound),
                    Workload("toy", tuple(reqs))))
    return out


def cluster(case: Case, models: LWM7BA800) -> ElasticCluster:
    fam = "zipf" if case.dataset.startswith("zipf") else case.dataset
    cost = esp_cost_model(models, case.tp)
    cap = case.capacity or KV_CAPACITY[case.tp]
    if case.scheduler == "loongserve":
        sched = LoongServeScheduler(cost, LoongServeConfig(max_num_ooe=MAX_NUM_OOE[fam],
                                                           max_num_seqs=MAX_NUM_SEQS[fam],
                                                           admission_max_new_tokens=case.admission))
        limit = cap * case.instances
    else:
        g = int(case.scheduler.removeprefix("static-"))
        sched = StaticSPScheduler(cost, g, max_num_seqs=MAX_NUM_SEQS[fam],
                                  admission_max_new_tokens=case.admission)
        limit = cap * g
    return ElasticCluster(sched, cost, [cap] * case.instances, max_request_tokens=limit)


def fingerprint(case: Case, models: LWM7BA800) -> tuple[list, float]:
    """([sha256, scheduler calls, prefill batches, decode batches, migrations, pauses], scheduler CPU-s)."""
    runs = toy_runs(case) if case.toy else [(cluster(case, models),
                                              dataset_workload(case.dataset, case.rate, case.n, case.seed))]
    h = hashlib.sha256()
    spent = [0.0]
    counts = [0] * 5
    for c, workload in runs:
        inner = c.scheduler.schedule

        def schedule(view, inner=inner):
            t = time.process_time()
            plan = inner(view)
            spent[0] += time.process_time() - t
            h.update(repr(plan).encode())
            return plan

        c.scheduler.schedule = schedule  # type: ignore[method-assign]
        res = c.run(workload)
        h.update(repr([(r.first_token_time, r.finish_time, r.num_output_tokens, r.error)
                       for r in res.records]).encode())
        s = res.stats
        h.update(repr((s.num_prefill_batches, s.num_decode_batches, s.num_scheduler_calls, s.num_migrations,
                       s.migrated_tokens, s.num_paused, sorted(s.prefill_degree_hist.items()), s.busy_time,
                       s.end_time)).encode())
        for k, v in enumerate((s.num_scheduler_calls, s.num_prefill_batches, s.num_decode_batches,
                               s.num_migrations, s.num_paused)):
            counts[k] += v
    return [h.hexdigest(), *counts], spent[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("record", "check"))
    ap.add_argument("file", type=Path)
    ap.add_argument("--only", default=None, help="cases whose key contains this string")
    ap.add_argument("--fast", action="store_true", help="only the cases of the fast test")
    args = ap.parse_args()
    models = LWM7BA800.fit()
    cases = [c for c in CASES if (args.only is None or args.only in c.key) and (c.fast or not args.fast)]
    got: dict[str, list] = {}
    total = 0.0
    for case in cases:
        t0 = time.process_time()
        got[case.key], sched_s = fingerprint(case, models)
        total += time.process_time() - t0
        print(f"{case.key}: {got[case.key]} ({time.process_time() - t0:.2f} CPU-s, scheduler "
              f"{sched_s:.2f} s, {1e3 * sched_s / max(got[case.key][1], 1):.3f} ms/call)", flush=True)
    print(f"{len(cases)} cases, {total:.1f} CPU-s", flush=True)
    if args.mode == "record":
        args.file.write_text(json.dumps(got, indent=1) + "\n")
        return
    want = json.loads(args.file.read_text())
    diff = sorted(k for k in got if want.get(k) != got[k])
    print(f"{len(got) - len(diff)}/{len(got)} cases identical" + (f"; differ: {diff}" if diff else ""))
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main()
