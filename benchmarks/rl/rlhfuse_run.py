"""RLHFuse on this machine: real PPO iterations with and without stage fusion, on the same samples.

One SFT warm-up, then `foundry.rl.run.train` (Ray actors: two rollout workers, one per core, and a
colocated trainer; `--mode sync`) once per system, every one from the same policy with the same prompts
and seeds, so each step's samples are the same (checked: the same tokens and rewards per step):

- `none`: PPO as `foundry rl train` runs it by default (the trainer computes the inference stage);
- `base`: RLHFuse-Base: `--fusion inter --fusion-threshold 0`: generation, then the inference stage on
  every worker, then training (the same code as the fused run, with nothing overlapped);
- `inter-R`: inter-stage fusion at R_t = R (`auto`: chosen each batch by simulating the lengths seen);
- `both`: inter (auto) and intra-stage fusion (the trainer runs the fused actor/critic schedule; in one
  process this changes the order of the work, not its amount: see `fused_training.py` for processes).

Printed per system: median over the steps after the first (warm-up) of the iteration time, the
generation+inference time (launch to the last sample's inference), the trainer's busy time, the samples
migrated, the inference seconds hidden behind generation, and the speed-up over `base`.

    OMP_NUM_THREADS=1 python benchmarks/rl/rlhfuse_run.py [--steps 6] [--systems base,inter-auto] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from foundry.rl.config import RLConfig
from foundry.rl.run import initial_policy, train

SYSTEMS = ["none", "base", "inter-0.1", "inter-0.2", "inter-0.4", "inter-auto", "both"]


def system_config(name: str, common: dict) -> RLConfig:
    if name == "none":
        return RLConfig(**common)
    if name == "base":
        return RLConfig(**common, fusion="inter", fusion_threshold=0.0)
    if name == "both":
        return RLConfig(**common, fusion="both")
    threshold = name.removeprefix("inter-")
    return RLConfig(**common, fusion="inter",
                    fusion_threshold=None if threshold == "auto" else float(threshold))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="rle")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts-per-step", type=int, default=16)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--sft-steps", type=int, default=600)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--backend", default="ray", choices=["ray", "local"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    common = dict(task=args.task, algo="ppo", mode="sync", steps=args.steps,
                  prompts_per_step=args.prompts_per_step, n=args.n, layers=args.layers, hidden=args.hidden,
                  sft_steps=args.sft_steps, backend=args.backend, seed=args.seed, eval_prompts=16)
    cfg, weights = initial_policy(RLConfig(**common), log=lambda m: None)
    rows, samples_seen = [], None
    for name in args.systems.split(","):
        config = system_config(name, common)
        load = os.getloadavg()[0]
        start = time.monotonic()
        run = train(config, cfg, weights)
        steps = run.records[1:] or run.records  # the first step warms the actors up
        seen = [(r.tokens, round(r.reward, 9)) for r in run.records]
        same = samples_seen is None or seen == samples_seen
        samples_seen = samples_seen or seen

        def med(key: str, steps=steps) -> float:
            return statistics.median(r.extra.get(key, float("nan")) for r in steps)

        row = {
            "system": name, "fusion": config.fusion, "threshold": config.fusion_threshold,
            "iteration_s": statistics.median(r.iteration_s for r in steps),
            "gen_inference_s": med("gen_inference_s") if config.inter_fusion else None,
            "gen_s": statistics.median(r.gen_s for r in steps),
            "train_busy_s": statistics.median(r.train_busy_s for r in steps),
            "migrated_samples": med("migrated_samples") if config.inter_fusion else 0,
            "chosen_threshold": med("fusion_threshold") if config.inter_fusion else None,
            "inference_hidden_s": med("inference_hidden_s") if config.inter_fusion else 0.0,
            "inference_s": med("inference_s") if config.inter_fusion else None,
            "same_samples_as_first": same, "reward_after": run.eval_after["reward"],
            "wall_s": round(time.monotonic() - start, 1), "load_before": round(load, 2),
        }
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    base = next((r["iteration_s"] for r in rows if r["system"] == "base"), None)
    if not args.json:
        for r in rows:
            speed = f"{base / r['iteration_s']:.3f}x" if base else "-"
            gi = "-" if r["gen_inference_s"] is None else f"{r['gen_inference_s']:.3f}"
            print(f"{r['system']:11s} iteration {r['iteration_s']:.3f} s  gen+inference {gi} s  "
                  f"train {r['train_busy_s']:.3f} s  migrated {r['migrated_samples']:5.1f}  "
                  f"hidden inference {r['inference_hidden_s']:.3f} s  vs base {speed}  "
                  f"same samples {r['same_samples_as_first']}", flush=True)
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "json")
    print(json.dumps({"command": f"OMP_NUM_THREADS=1 python benchmarks/rl/rlhfuse_run.py {flags}",
                      "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
