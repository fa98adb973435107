"""FastServe (skip-join MLFQ) against FCFS, vLLM-style, plain MLFQ and the SRPT oracle, on the real engine.

One engine (foundry-tiny on this CPU) with a small batch cap and token budget so that requests queue,
driven in-process and open-loop by `foundry.serve.bench` (Poisson arrivals, `ignore_eos`, target output
lengths). The engine's latency profile is measured first; sj-mlfq places jobs with it, and every MLFQ
policy uses the paper's 10 ms base quantum scaled to this engine's decode step (`--mlfq-base-quantum
auto`). For each workload x arrival rate x policy: average and P99 JCT, mean and P95 seconds per output
token, mean TTFT, throughput, preemptions and swaps. A second part compares proactive swap, reactive
swap and recompute under a small device KV pool. SRPT is an **oracle**: it reads each request's true
output length (max_tokens with ignore_eos), which no real server knows.

Workloads: ``pareto`` (heavy-tailed synthetic: log-normal prompts around --prompt-len, Pareto(1.5)
outputs around --output-len) and ``azure-conv`` (lengths of the first rows of the Azure LLM inference
trace 2023, conversation service, CC-BY-4.0, read by path and scaled by --azure-length-scale).

    python benchmarks/serve/fastserve.py                       # full run (~10 min on 2 cores)
    python benchmarks/serve/fastserve.py --json > out.json     # results as JSON only
    python benchmarks/serve/fastserve.py --quick               # a smoke run (~1 min)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from foundry.config_cli import replace
from foundry.serve import EngineConfig, LLMEngine
from foundry.serve.bench import InProcessTarget, RequestSpec, Workload, build_workload, run_benchmark
from foundry.serve.bench.arrivals import arrival_times
from foundry.serve.bench.trace import read_trace
from foundry.serve.bench.workloads import LogNormal, Pareto
from foundry.serve.policies import build_policy
from foundry.serve.profile import measure_profile, scaled_base_quantum

POLICIES = ("fcfs", "vllm", "mlfq", "sj-mlfq", "srpt")
LABELS = {"fcfs": "FCFS (Orca)", "vllm": "vLLM-style", "mlfq": "MLFQ", "sj-mlfq": "SJ-MLFQ",
          "srpt": "SRPT (oracle)"}
AZURE_CONV = "/work/shared/data/traces/azure_llm_2023_conv.csv"
MEMORY_MODES = ("proactive-swap", "reactive-swap", "recompute")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def step_ms(engine: LLMEngine, first_step: int) -> float:
    """Median wall time (ms) of this run's pure-decode steps: a gauge of how busy the shared CPU was."""
    recs = [r.elapsed for r in engine.iteration_records[first_step:] if r.num_prefill_tokens == 0]
    return statistics.median(recs) * 1e3 if recs else float("nan")


def row(result, engine: LLMEngine, before) -> dict:
    after = engine.stats()
    ps = after.policy_stats
    step_s = step_ms(engine, before.num_steps) / 1e3
    return {
        "completed": result.num_completed, "failed": result.num_failed,
        "avg_jct_s": result.e2e_s.mean, "p99_jct_s": result.e2e_s.p99,
        "mean_s_per_token": result.s_per_output_token.mean, "p95_s_per_token": result.s_per_output_token.p95,
        "mean_ttft_s": result.ttft_s.mean, "p99_ttft_s": result.ttft_s.p99,
        "decode_step_ms": step_s * 1e3,
        # JCT in units of this run's median decode step: removes most of a shared CPU's slowdown
        "avg_jct_steps": result.e2e_s.mean / step_s, "p99_jct_steps": result.e2e_s.p99 / step_s,
        "output_tok_per_s": result.output_throughput, "duration_s": result.duration_s,
        "preemptions": after.num_preemptions - before.num_preemptions,
        "swapped_out": after.num_swapped_out - before.num_swapped_out,
        "swapped_in": after.num_swapped_in - before.num_swapped_in,
        "demotions": ps.get("num_demotions"), "starvation_promotions": ps.get("num_promotions"),
        "max_level": len(ps["queue_levels"]) - 1 if "queue_levels" in ps else None,
    }


def median_row(rounds: list[dict]) -> dict:
    """Median of each metric over the rounds (the same workload each round; = mean for two rounds)."""
    out = {}
    for key, value in rounds[0].items():
        vals = [r[key] for r in rounds]
        out[key] = statistics.median(vals) if isinstance(value, int | float) and None not in vals else value
    return out


def run_point(base: LLMEngine, config: EngineConfig, profile, policy: str, workload, seed: int,
              memory_mode: str = "proactive-swap") -> dict:
    cfg = replace(config, policy=policy, mlfq_memory_mode=memory_mode, mlfq_base_quantum=None,
                  preemption_mode="recompute")
    engine = base.rebuilt(cfg, build_policy(cfg.scheduler, profile))  # same weights, fresh KV cache and core
    before = engine.stats()
    result = run_benchmark(workload, InProcessTarget(engine), seed=seed)
    if result.errors:
        raise RuntimeError(f"{policy}: {result.errors[:3]}")
    return row(result, engine, before)


def pareto_workload(n: int, rate: float, args) -> Workload:
    """Log-normal prompts (sigma 0.5) and Pareto(`--pareto-alpha`) outputs, as `foundry serve bench
    --workload pareto` (which fixes alpha = 1.5), clipped to the maximum lengths; Poisson arrivals."""
    rng = np.random.default_rng(args.seed)  # same draws, in the same order, as build_workload's
    prompts = np.minimum(LogNormal(args.prompt_len, 0.5).sample(n, rng), args.max_prompt_len)
    outputs = np.minimum(Pareto(args.output_len, args.pareto_alpha).sample(n, rng), args.max_output_len)
    times = arrival_times(rate, n, cv=1.0, rng=rng)
    lens = zip(times, prompts, outputs, strict=True)
    specs = tuple(RequestSpec(float(t), int(p), int(o)) for t, p, o in lens)
    return Workload(f"pareto-{args.pareto_alpha:g}", specs)


def workloads(args, rate: float, name: str):
    n = max(8, min(args.num_requests, round(rate * args.window_s)))  # about window_s seconds of arrivals
    if name == "pareto":
        return pareto_workload(n, rate, args)
    trace = read_trace(Path(args.azure_trace))
    wl = build_workload(num_requests=n, rate=rate, trace=trace, length_scale=args.azure_length_scale,
                        max_prompt_len=args.max_prompt_len, max_output_len=args.max_output_len,
                        seed=args.seed)
    return Workload(name, wl.requests)


def jct_steps(r: dict) -> float:
    """Average JCT in decode steps: median over rounds of (avg JCT / that round's median decode step)."""
    return statistics.median(x["avg_jct_s"] / (x["decode_step_ms"] / 1e3) for x in r.get("rounds") or [r])


def table(results: list[dict]) -> str:
    head = ("| workload | rate (req/s) | policy | avg JCT (s) | P99 JCT (s) | avg JCT (decode steps) | "
            "mean s/tok | P95 s/tok | mean TTFT (s) | tok/s | decode step (ms) | preempt | swaps out |")
    lines = [head, "|" + "---|" * 13]
    for r in results:
        lines.append(f"| {r['workload']} | {r['rate']:g} | {LABELS.get(r['policy'], r['policy'])} | "
                     f"{r['avg_jct_s']:.2f} | {r['p99_jct_s']:.2f} | {jct_steps(r):.0f} | "
                     f"{r['mean_s_per_token']:.4f} | {r['p95_s_per_token']:.4f} | {r['mean_ttft_s']:.3f} | "
                     f"{r['output_tok_per_s']:.0f} | {r['decode_step_ms']:.2f} | {r['preemptions']:g} | "
                     f"{r['swapped_out']:g} |")
    return "\n".join(lines)


def report(data: dict) -> None:
    results, meta = data["results"], data["meta"]
    print(table([r for r in results if r["part"] == "sweep"]))
    print()
    for r in results:
        if r["part"] == "memory":
            print(f"memory ({r['device_blocks']} device blocks) {r['policy']} {r['memory_mode']}: "
                  f"avg JCT {r['avg_jct_s']:.2f} s ({jct_steps(r):.0f} steps), P99 {r['p99_jct_s']:.2f} s, "
                  f"swaps out {r['swapped_out']}, preemptions {r['preemptions']}, "
                  f"decode step {r['decode_step_ms']:.2f} ms")
    print(f"\nwall time {meta['wall_s']:.0f} s")


def plot(results: list[dict], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for wl in sorted({r["workload"] for r in results if r["part"] == "sweep"}):
        fig, axes = plt.subplots(1, 4, figsize=(18, 4))
        for pol in POLICIES:
            pts = sorted(((r["rate"], r) for r in results
                          if r["workload"] == wl and r["policy"] == pol and r["part"] == "sweep"),
                         key=lambda x: x[0])
            if not pts:
                continue
            xs = [x for x, _ in pts]
            style = "--" if pol == "srpt" else "-"
            for ax, get in zip(axes, (lambda r: r["avg_jct_s"], jct_steps, lambda r: r["p99_jct_s"],
                                      lambda r: r["mean_s_per_token"]), strict=True):
                ax.plot(xs, [get(r) for _, r in pts], style, marker="o", label=LABELS[pol])
        titles = ("average JCT (s)", "average JCT (decode steps)", "P99 JCT (s)", "mean s / output token")
        for ax, title in zip(axes, titles, strict=True):
            ax.set_xlabel("arrival rate (req/s)")
            ax.set_title(title)
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.suptitle(f"{wl}: foundry-tiny on a shared 2-core CPU, measured (SRPT is an oracle)")
        fig.tight_layout()
        path = out_dir / f"{wl}_sweep.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(str(path))
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--pareto-rates", default="4,8,14")
    ap.add_argument("--azure-rates", default="4,8,12")
    ap.add_argument("--num-requests", type=int, default=120, help="most requests per point")
    ap.add_argument("--window-s", type=float, default=7.0, help="requests per point = rate x this (bounded)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds per point (reported: the median)")
    ap.add_argument("--prompt-len", type=int, default=64, help="pareto: median prompt length")
    ap.add_argument("--output-len", type=int, default=32, help="pareto: median output length")
    ap.add_argument("--pareto-alpha", type=float, default=1.5, help="pareto: tail index of the outputs")
    ap.add_argument("--max-prompt-len", type=int, default=512)
    ap.add_argument("--max-output-len", type=int, default=1536)
    ap.add_argument("--azure-trace", default=AZURE_CONV)
    ap.add_argument("--azure-length-scale", type=float, default=0.25)
    ap.add_argument("--max-num-seqs", type=int, default=4)
    ap.add_argument("--max-num-batched-tokens", type=int, default=512)
    ap.add_argument("--ablation-device-blocks", type=int, default=48,
                    help="device KV blocks (16 tokens) for the memory-mode comparison (0: skip it); its "
                         "workload is clipped so each request fits: prompt <= 1/3, output <= 2/3 of the pool")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 30 requests, two rates, one round")
    ap.add_argument("--figures", default=None, help="directory for the plots (default: none)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    ap.add_argument("--from-json", default=None, help="re-render the table (and --figures) of a --json run")
    args = ap.parse_args()
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        if args.figures:
            plot(data["results"], Path(args.figures))
        report(data)
        return
    if args.quick:
        args.num_requests, args.pareto_rates, args.azure_rates, args.repeats = 30, "4,12", "8", 1
    policies = [p for p in args.policies.split(",") if p]
    for p in policies:
        if p not in POLICIES:
            ap.error(f"--policies: unknown {p!r}; known: {', '.join(POLICIES)}")
    if args.repeats < 1:
        ap.error("--repeats: must be >= 1")

    t_start = time.perf_counter()
    config = EngineConfig(policy="fcfs", max_num_seqs=args.max_num_seqs,
                          max_num_batched_tokens=args.max_num_batched_tokens, num_host_blocks=2048)
    engine = LLMEngine(config)
    profile = measure_profile(engine, repeats=3)
    q0 = scaled_base_quantum(profile)
    log(f"profile: decode step {profile.decode_step_time(1) * 1e3:.2f} ms at batch 1 -> "
        f"q0 = {q0 * 1e3:.3f} ms; prefill {profile.prefill_lens[0]}..{profile.prefill_lens[-1]} tokens: "
        f"{profile.prefill_times[0] * 1e3:.1f}..{profile.prefill_times[-1] * 1e3:.1f} ms")
    warm = build_workload(num_requests=8, rate=50, generator="pareto", seed=99)
    run_point(engine, config, profile, "fcfs", warm, 99)

    results = []
    sweeps = [("pareto", [float(r) for r in args.pareto_rates.split(",") if r]),
              ("azure-conv", [float(r) for r in args.azure_rates.split(",") if r])]
    for wl_name, rates in sweeps:
        for rate in rates:
            wl = workloads(args, rate, wl_name)
            rounds: dict[str, list[dict]] = {p: [] for p in policies}
            for k in range(args.repeats):  # rotate the order so slow spells of a shared CPU spread out
                for pol in policies[k % len(policies):] + policies[:k % len(policies)]:
                    rounds[pol].append(run_point(engine, config, profile, pol, wl, args.seed))
                    r = rounds[pol][-1]
                    log(f"{wl.name} rate {rate:g} {pol:8s} avg JCT {r['avg_jct_s']:.2f} s  "
                        f"P99 {r['p99_jct_s']:.2f} s  s/tok {r['mean_s_per_token']:.4f}  "
                        f"step {r['decode_step_ms']:.2f} ms  swaps {r['swapped_out']}  "
                        f"preempt {r['preemptions']}  ({time.perf_counter() - t_start:.0f} s)")
            for pol in policies:
                results.append({"part": "sweep", "workload": wl.name, "rate": rate, "policy": pol,
                                "num_requests": len(wl), **median_row(rounds[pol]), "rounds": rounds[pol]})

    # memory modes under a small device pool, at the highest pareto rate
    blocks = args.ablation_device_blocks
    small = replace(config, num_device_blocks=blocks) if blocks else config
    engine_small = LLMEngine(small) if blocks else None
    rate = max(sweeps[0][1], default=0.0)
    pool = args.ablation_device_blocks * config.cache.block_size
    clipped = argparse.Namespace(**{**vars(args), "max_prompt_len": min(args.max_prompt_len, pool // 3),
                                    "max_output_len": min(args.max_output_len, pool - pool // 3)})
    wl = workloads(clipped, rate, "pareto") if engine_small and rate else None
    ablation = [("sj-mlfq", m) for m in MEMORY_MODES] + [("fcfs", "-"), ("vllm", "recompute")]
    for pol, mode in ablation if wl else []:
        r = run_point(engine_small, small, profile, pol, wl, args.seed,
                      memory_mode=mode if mode != "-" else "proactive-swap")
        results.append({"part": "memory", "workload": wl.name, "rate": rate, "policy": pol,
                        "memory_mode": mode, "device_blocks": args.ablation_device_blocks, **r})
        log(f"memory {pol} {mode}: avg JCT {r['avg_jct_s']:.2f} s, swaps out {r['swapped_out']}, "
            f"preemptions {r['preemptions']}, step {r['decode_step_ms']:.2f} ms")

    meta = {"model": engine.model_name, "device": str(engine.device), "max_num_seqs": args.max_num_seqs,
            "max_num_batched_tokens": args.max_num_batched_tokens, "window_s": args.window_s,
            "repeats": args.repeats, "pareto_alpha": args.pareto_alpha, "base_quantum_s": q0,
            "profile": profile.to_dict(), "seed": args.seed, "wall_s": time.perf_counter() - t_start,
            "srpt": "oracle: reads the true output length"}
    figures = plot(results, Path(args.figures)) if args.figures else []
    if args.json:
        print(json.dumps({"meta": meta, "results": results, "figures": figures}, allow_nan=False))
        return
    report({"meta": meta, "results": results})


if __name__ == "__main__":
    main()
