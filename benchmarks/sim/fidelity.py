"""Simulator fidelity: the same trace through the real engine and through the simulator.

    python benchmarks/sim/fidelity.py [--policies vllm,fcfs,sj-mlfq] [--rate 30] [--json]

For each policy: (1) calibrate: run a calibration workload (its own seed) through the real engine
(foundry-tiny on this CPU, in-process, open loop on the wall clock) and fit the linear cost model to
its steps (`LinearCostModel.fit`, fit error printed); (2) run the test workload (another seed) through
a fresh engine; (3) simulate the test workload with the fitted model, the same policy, the same pools.
Reported: error of mean / P90 JCT and mean TTFT (sim vs real, relative), and the mean over requests of
each request's relative JCT error. Goal: mean error <= 15%. `--save-samples FILE` keeps the calibration
steps for `foundry sim fit` / `--cost fitted:FILE`. Timing on a shared CPU is noisy: run it under a
quiet machine, or at least `nice`, and read the spread across repeats.
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


def rel(sim: float, real: float) -> float:
    return (sim - real) / real


def one_policy(policy: str, args: argparse.Namespace) -> dict:
    base = {"policy": policy, "max_num_seqs": args.max_num_seqs, "max_num_batched_tokens": args.max_tokens,
            "num_host_blocks": args.host_blocks, "mlfq_base_quantum_s": None if "mlfq" in policy else 0.01}
    if args.device_blocks:
        base["num_device_blocks"] = args.device_blocks
    if policy == "vllm" and args.swap:
        base["preemption_mode"] = "swap"
    config = EngineConfig(**base)

    def workload(seed: int):
        return build_workload(num_requests=args.num_requests, rate=args.rate, cv=args.cv,
                              generator=args.workload, prompt_len=args.prompt_len, output_len=args.output_len,
                              max_prompt_len=400, max_output_len=200, seed=seed)

    # 1. calibrate on the real engine, always under vllm (chunked, mixed steps): one model for all policies
    cal_engine = LLMEngine(config.model_copy(update={"policy": "vllm", "mlfq_base_quantum_s": 0.01}))
    run_engine(cal_engine, workload(args.seed + 1000))  # warm-up (allocator, first calls)
    cal = run_engine(cal_engine, workload(args.seed + 1))
    block_size = config.block_size
    meta = {"engine": "foundry-tiny cpu float32", "block_size": block_size,
            "num_device_blocks": cal_engine.block_manager.device.num_blocks,
            "num_host_blocks": args.host_blocks,
            "kv_bytes_per_token": kv_bytes_per_token(cal_engine.model.config, torch.float32)}
    model, report = LinearCostModel.fit(cal.samples, name="fitted-foundry-tiny-cpu", meta=meta)
    if args.save_samples:
        with open(args.save_samples, "w") as f:
            json.dump(samples_to_json(cal.samples, meta), f)
    profile = model.to_profile(decode_context=64)

    # 2. the test trace on a fresh engine with the policy under test
    engine = LLMEngine(config, build_policy(config, profile))  # (sj-)mlfq read the profile; the sim too
    run_engine(engine, workload(args.seed + 1000))  # warm-up
    engine.policy = build_policy(config, profile)
    real = run_engine(engine, workload(args.seed))

    # 3. the simulator, same policy, pools, trace: with the calibrated model, and (in-sample) with a model
    #    fitted to the test run's own steps, which removes machine-speed drift between the two runs
    in_model, in_report = LinearCostModel.fit(real.samples, name="fitted-in-sample", meta=meta)
    r_jct = [r.e2e for r in real.records]
    r_ttft = [r.ttft for r in real.records]
    out = {"policy": policy, "fit": report.__dict__, "in_sample_fit": in_report.__dict__,
           "coefficients": model.describe(), "num_requests": len(r_jct), "real_steps": len(real.step_times),
           "real_busy_s": sum(real.step_times), "load_average": os.getloadavg()[0],
           "real_mean_jct_s": float(np.mean(r_jct)), "real_mean_ttft_s": float(np.mean(r_ttft)),
           "real_preemptions": engine.stats().num_preemptions,
           # the calibrated model alone on the test run's real steps: Σ predicted / Σ measured
           "holdout_total_ratio": sum(model.predict(f) for f, _ in real.samples) / sum(real.step_times)}
    for key, m in (("calibrated", model), ("in_sample", in_model)):
        dep = Deployment(m, block_size, meta["num_device_blocks"], args.host_blocks, 0.0, float("inf"))
        sim = simulate(workload(args.seed), dep, build_policy(config, profile),
                       max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_tokens)
        s_jct = [r.e2e for r in sim.records]
        s_ttft = [r.ttft for r in sim.records]
        out[key] = {
            "sim_steps": sim.stats.num_steps, "sim_busy_s": sim.stats.busy_time,
            "sim_mean_jct_s": float(np.mean(s_jct)), "sim_mean_ttft_s": float(np.mean(s_ttft)),
            "err_mean_jct": rel(float(np.mean(s_jct)), float(np.mean(r_jct))),
            "err_p90_jct": rel(percentile(s_jct, 90), percentile(r_jct, 90)),
            "err_mean_ttft": rel(float(np.mean(s_ttft)), float(np.mean(r_ttft))),
            "mean_per_request_jct_err": float(np.mean([abs(rel(s, r))
                                                       for s, r in zip(s_jct, r_jct, strict=True)])),
            "sim_preemptions": sim.stats.num_preemptions,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="vllm,fcfs,sj-mlfq")
    ap.add_argument("--workload", default="lognormal")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=32)
    ap.add_argument("--num-requests", type=int, default=120)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--cv", type=float, default=1.0)
    ap.add_argument("--max-num-seqs", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--device-blocks", type=int, default=0, help="0: the engine's default pool")
    ap.add_argument("--host-blocks", type=int, default=512)
    ap.add_argument("--swap", action="store_true", help="vllm: preempt by swapping")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="run each policy this many times (timing spread)")
    ap.add_argument("--save-samples", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [one_policy(p.strip(), args) for _ in range(args.repeats)
            for p in args.policies.split(",") if p.strip()]
    if args.json:
        print(json.dumps({"config": vars(args), "results": rows}))
        return
    for r in rows:
        print(f"{r['policy']:>8} (load average {r['load_average']:.1f}): {r['fit']['num_samples']} "
              f"calibration steps, fit mean |err| {r['fit']['mean_rel_error']:.1%}; "
              f"{r['num_requests']} requests, {r['real_steps']} real steps, busy {r['real_busy_s']:.2f} s; "
              "calibrated model on the real test "
              f"steps: total {r['holdout_total_ratio']:.3f}x; real mean JCT {r['real_mean_jct_s']:.3f} s, "
              f"mean TTFT {r['real_mean_ttft_s'] * 1e3:.1f} ms")
        for key in ("calibrated", "in_sample"):
            e = r[key]
            print(f"          {key:>10}: sim mean JCT {e['sim_mean_jct_s']:.3f} s "
                  f"({e['err_mean_jct']:+.1%}), "
                  f"P90 JCT {e['err_p90_jct']:+.1%}, mean TTFT {e['sim_mean_ttft_s'] * 1e3:.1f} ms "
                  f"({e['err_mean_ttft']:+.1%}); per-request |JCT err| {e['mean_per_request_jct_err']:.1%}; "
                  f"steps {e['sim_steps']}")

if __name__ == "__main__":
    main()
