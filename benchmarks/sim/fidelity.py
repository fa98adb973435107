"""Simulator fidelity: the same trace through the real engine and through the simulator, out of sample.

    python benchmarks/sim/fidelity.py [--policies vllm,fcfs,sj-mlfq] [--rate 10] [--trials 3]
                                      [--calibration-runs 3] [--json]

Each trial, for each policy: (1) calibration runs of a short workload (their own seeds) through the
real engine under `vllm` (chunked, mixed steps; foundry-tiny on this CPU, in-process, open loop on the
wall clock), taken *around* the test run (half before, half after), never on the test trace; (2) the
test trace (its own seed per trial) through an engine with the policy under test; (3) the simulator on
the test trace, same policy, same pools, with three cost models:

- ``robust``: `LinearCostModel.fit_runs` over all calibration runs (pooled shape, median run's level);
- ``single``: the absolute fit to the one calibration run just before the test (one calibration run
  predicting another);
- ``in_sample``: fitted to the test run's own steps (no prediction: isolates the simulator's dynamics
  from machine-speed drift between runs).

Reported per trial: relative error (sim - real) / real of mean and P90 JCT and mean TTFT, and the
calibrated model's Σpredicted / Σmeasured over the test run's real steps; then, per model, the mean
|error| of mean JCT over all trials and policies with its min and max. Goal: mean error <= 15%. Timing
on a shared CPU is noisy: the load average is recorded with every run. `--save-samples FILE` keeps the
first calibration run's steps for `foundry sim fit` / `--cost fitted:FILE`.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from foundry.serve import EngineConfig, LLMEngine  # noqa: E402
from foundry.serve.bench.report import percentile  # noqa: E402
from foundry.serve.bench.workloads import build_workload  # noqa: E402
from foundry.serve.cache_engine import kv_bytes_per_token  # noqa: E402
from foundry.serve.policies import build_policy  # noqa: E402
from foundry.sim import simulate  # noqa: E402
from foundry.sim.calibrate import run_engine  # noqa: E402
from foundry.sim.cost_models import LinearCostModel  # noqa: E402
from foundry.sim.cost_models.fitted import samples_to_json  # noqa: E402
from foundry.sim.deployment import Deployment  # noqa: E402

MODELS = ("robust", "single", "in_sample")


def rel(sim: float, real: float) -> float:
    return (sim - real) / real


def engine_config(policy: str, args: argparse.Namespace) -> EngineConfig:
    base = {"policy": policy, "max_num_seqs": args.max_num_seqs, "max_num_batched_tokens": args.max_tokens,
            "num_host_blocks": args.host_blocks, "mlfq_base_quantum": None if "mlfq" in policy else 0.01}
    if args.device_blocks:
        base["num_device_blocks"] = args.device_blocks
    if policy == "vllm" and args.swap:
        base["preemption_mode"] = "swap"
    return EngineConfig(**base)


def workload(args: argparse.Namespace, seed: int, num_requests: int):
    return build_workload(num_requests=num_requests, rate=args.rate, cv=args.cv, generator=args.workload,
                          prompt_len=args.prompt_len, output_len=args.output_len, max_prompt_len=400,
                          max_output_len=200, seed=seed)


def one_trial(policy: str, index: int, trial: int, cal_engine: LLMEngine, args: argparse.Namespace) -> dict:
    config = engine_config(policy, args)
    meta = {"engine": "foundry-tiny cpu float32", "block_size": config.cache.block_size,
            "num_device_blocks": cal_engine.block_manager.device.num_blocks,
            "num_host_blocks": args.host_blocks,
            "kv_bytes_per_token": kv_bytes_per_token(cal_engine.model.config, torch.float32)}
    cal_seeds = [1000 + 100 * trial + 10 * index + j for j in range(args.calibration_runs)]
    n_before = (args.calibration_runs + 1) // 2
    loads = [os.getloadavg()[0]]

    def calibrate(seed: int) -> list:
        return run_engine(cal_engine, workload(args, seed, args.calibration_requests)).samples

    # 1. calibration runs before the test ...
    runs = [calibrate(s) for s in cal_seeds[:n_before]]
    single, single_report = LinearCostModel.fit(runs[-1], name="fitted-single", meta=meta)
    if args.save_samples and trial == 0:
        with open(args.save_samples, "w") as f:
            json.dump(samples_to_json(runs[0], meta), f)
    # the policy's latency profile (skip-join levels, scaled q0) comes from the run before the test, so the
    # engine and the simulator run the very same policy configuration
    profile = single.to_profile(decode_context=64)

    # 2. the test trace on an engine with the policy under test (warmed up on another seed)
    engine = LLMEngine(config, build_policy(config.scheduler, profile))
    run_engine(engine, workload(args, 2000 + trial, args.warmup_requests))
    engine = engine.rebuilt(policy=build_policy(config.scheduler, profile))  # same weights, fresh policy
    test = workload(args, args.seed + trial, args.num_requests)
    loads.append(os.getloadavg()[0])
    preemptions_before = engine.stats().num_preemptions
    real = run_engine(engine, test)

    # ... and after it
    runs += [calibrate(s) for s in cal_seeds[n_before:]]
    loads.append(os.getloadavg()[0])
    robust, robust_report, ratios = LinearCostModel.fit_runs(runs, name="fitted-robust", meta=meta)
    in_sample, in_report = LinearCostModel.fit(real.samples, name="fitted-in-sample", meta=meta)

    r_jct = [r.e2e for r in real.records]
    r_ttft = [r.ttft for r in real.records]
    real_total = sum(real.step_times)
    out = {"policy": policy, "trial": trial, "load_average": loads, "num_requests": len(r_jct),
           "real_steps": len(real.step_times), "real_busy_s": real_total,
           "real_mean_jct_s": float(np.mean(r_jct)), "real_mean_ttft_s": float(np.mean(r_ttft)),
           "real_preemptions": engine.stats().num_preemptions - preemptions_before,
           "calibration_run_ratios": ratios,
           "fit": {"robust": robust_report.__dict__, "single": single_report.__dict__,
                   "in_sample": in_report.__dict__}}
    for key, m in (("robust", robust), ("single", single), ("in_sample", in_sample)):
        dep = Deployment(m, config.cache.block_size, meta["num_device_blocks"], args.host_blocks, 0.0,
                         float("inf"))
        sim = simulate(test, dep, build_policy(config.scheduler, profile))  # the engine's limits
        s_jct = [r.e2e for r in sim.records]
        s_ttft = [r.ttft for r in sim.records]
        out[key] = {
            "total_ratio_on_real_steps": sum(m.predict(f) for f, _ in real.samples) / real_total,
            "sim_steps": sim.stats.num_steps, "sim_busy_s": sim.stats.busy_time,
            "sim_mean_jct_s": float(np.mean(s_jct)), "sim_mean_ttft_s": float(np.mean(s_ttft)),
            "err_mean_jct": rel(float(np.mean(s_jct)), float(np.mean(r_jct))),
            "err_p90_jct": rel(percentile(s_jct, 90), percentile(r_jct, 90)),
            "err_mean_ttft": rel(float(np.mean(s_ttft)), float(np.mean(r_ttft))),
            "sim_preemptions": sim.stats.num_preemptions,
        }
    return out


def summarize(rows: list[dict]) -> dict:
    out = {}
    for key in MODELS:
        errs = [abs(r[key]["err_mean_jct"]) for r in rows]
        out[key] = {"mean_abs_err_mean_jct": float(np.mean(errs)), "median": float(np.median(errs)),
                    "min": float(np.min(errs)), "max": float(np.max(errs)),
                    "num_within_15pct": int(sum(e <= 0.15 for e in errs)), "num_runs": len(errs)}
    return out


def print_row(r: dict) -> None:
    loads = ", ".join(f"{x:.1f}" for x in r["load_average"])
    speeds = ", ".join(f"{x:.2f}" for x in r["calibration_run_ratios"])
    print(f"trial {r['trial']} {r['policy']:>8} (load {loads}): real mean JCT {r['real_mean_jct_s']:.3f} s, "
          f"TTFT {r['real_mean_ttft_s'] * 1e3:.1f} ms, busy {r['real_busy_s']:.2f} s; "
          f"calibration runs' speed {speeds}", flush=True)
    for key in MODELS:
        e = r[key]
        print(f"    {key:>9}: total on real steps {e['total_ratio_on_real_steps']:.2f}x, "
              f"mean JCT {e['err_mean_jct']:+.1%}, P90 JCT {e['err_p90_jct']:+.1%}, "
              f"mean TTFT {e['err_mean_ttft']:+.1%}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="vllm,fcfs,sj-mlfq")
    ap.add_argument("--workload", default="lognormal")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=32)
    ap.add_argument("--num-requests", type=int, default=120, help="test trace")
    ap.add_argument("--calibration-requests", type=int, default=60, help="each calibration run")
    ap.add_argument("--calibration-runs", type=int, default=3, help="per trial, around the test run")
    ap.add_argument("--warmup-requests", type=int, default=30)
    ap.add_argument("--trials", type=int, default=3, help="independent test runs per policy")
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--cv", type=float, default=1.0)
    ap.add_argument("--max-num-seqs", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--device-blocks", type=int, default=0, help="0: the engine's default pool")
    ap.add_argument("--host-blocks", type=int, default=512)
    ap.add_argument("--swap", action="store_true", help="vllm: preempt by swapping")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-samples", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.calibration_runs < 1 or args.trials < 1:
        ap.error("--calibration-runs and --trials must be >= 1")
    torch.set_num_threads(1)
    cal_engine = LLMEngine(engine_config("vllm", args))
    run_engine(cal_engine, workload(args, 999, args.warmup_requests))  # warm-up (allocator, first calls)
    rows = []
    for trial in range(args.trials):
        for index, p in enumerate(args.policies.split(",")):
            rows.append(one_trial(p.strip(), index, trial, cal_engine, args))
            if not args.json:
                print_row(rows[-1])
    summary = summarize(rows)
    if args.json:
        print(json.dumps({"config": vars(args), "results": rows, "summary": summary}))
        return
    for key, s in summary.items():
        print(f"{key:>9}: mean |err| of mean JCT {s['mean_abs_err_mean_jct']:.1%} (median {s['median']:.1%}, "
              f"range {s['min']:.1%}-{s['max']:.1%}), within 15% in {s['num_within_15pct']}/{s['num_runs']}")


if __name__ == "__main__":
    main()
