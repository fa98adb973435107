"""StreamRL's modes on this machine, side by side: sync (colocated), sync-disagg, stream and async.

`async` recomputes stale tokens' behaviour logprobs in the trainer (verl's default); `async-engine-lp`
takes them from the engine, which returns them with each sampled token (they agree to 1e-5 here).

One SFT warm-up is made first and every mode starts from it, on the same task, prompts and seeds, with
Ray actors (real processes, `OMP_NUM_THREADS=1` each). `sync` generates on two engine instances (one
per core) and trains with two threads (`sync-t1`: with one; the faster of the two is the fair
baseline); the other modes put one engine instance on one core and the trainer on the other.

Printed: the generation and training time of one batch on one core (from the sync-disagg run), the
overlap ceiling (T_gen + T_train) / max(T_gen, T_train), the load average, and per mode the samples/s
over the RL steps (no SFT, no evaluation, no actor start-up), the held-out greedy reward before and
after RL, and the staleness seen.

    OMP_NUM_THREADS=1 python benchmarks/rl/streamrl.py [--steps 30] [--modes sync,stream,...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from foundry.rl.config import RLConfig
from foundry.rl.resources import allocate_one_pool, fit_inverse
from foundry.rl.run import initial_policy, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="rle")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--prompts-per-step", type=int, default=16)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--sft-steps", type=int, default=600)
    ap.add_argument("--eval-prompts", type=int, default=128)
    ap.add_argument("--micro-batch-groups", type=int, default=4)
    ap.add_argument("--kl-coef", type=float, default=0.02)
    ap.add_argument("--modes", default="sync,sync-t1,sync-disagg,stream,async,async-engine-lp")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-ranker", action="store_true",
                    help="no online length ranker in any mode (with one rollout worker it only orders "
                    "admission, and its training in the controller competes for the two cores)")
    ap.add_argument("--log-dir", help="write each mode's steps as JSONL here (for `foundry rl plot`)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    common = dict(task=args.task, steps=args.steps, prompts_per_step=args.prompts_per_step, n=args.n,
                  sft_steps=args.sft_steps, eval_prompts=args.eval_prompts, seed=args.seed,
                  micro_batch_groups=args.micro_batch_groups, kl_coef=args.kl_coef, ranker=not args.no_ranker)
    say = (lambda *a: None) if args.json else print
    t0 = time.monotonic()
    cfg, weights = initial_policy(RLConfig(**common), log=say)
    modes = {}
    for mode in args.modes.split(","):
        # sync-t1: the colocated baseline with a one-thread trainer (two torch threads need not be faster
        # for a model this small; async is compared with the better colocated run too)
        # async-engine-lp: async with the engine's logprobs as the stale tokens' behaviour logprobs (no
        # recomputation under the old weights in the trainer)
        extra = {"sync-t1": {"trainer_threads": 1},
                 "async-engine-lp": {"behaviour_logprobs": "engine"}}.get(mode, {})
        base = mode.removesuffix("-t1").removesuffix("-engine-lp")
        result = train(RLConfig(mode=base, **common, **extra), cfg, weights)
        modes[mode] = result
        s = result.summary()
        say(f"{mode:>12}: {s['samples_per_s']:7.1f} samples/s  "
            f"reward {s['reward_before']:.3f} -> {s['reward']:.3f}"
            f"  exact {s['exact_before']:.3f} -> {s['exact']:.3f}  staleness max {s['staleness_max']}"
            f"  ({s['wall_s']:.1f} s)")
        if args.log_dir:
            os.makedirs(args.log_dir, exist_ok=True)
            with open(os.path.join(args.log_dir, f"{mode}.jsonl"), "w") as f:
                f.writelines(json.dumps(r.as_dict()) + "\n" for r in result.records)
    ref = modes.get("sync-disagg")
    t_gen = statistics.mean(r.gen_s for r in ref.records) if ref else float("nan")
    t_train = statistics.mean(r.train_busy_s for r in ref.records) if ref else float("nan")
    ceiling = (t_gen + t_train) / max(t_gen, t_train) if ref else float("nan")
    out = {
        "modes": {m: {"samples_per_s": r.samples_per_s, "reward": r.eval_after["reward"],
                      "exact": r.eval_after["exact"], "reward_before": r.eval_before["reward"],
                      "staleness_max": r.summary()["staleness_max"], "wall_s": r.wall_s}
                  for m, r in modes.items()},
        "t_gen_s": t_gen, "t_train_s": t_train, "ceiling": ceiling, "load_average": os.getloadavg(),
        "cpus": os.cpu_count(), "config": common, "total_s": time.monotonic() - t0,
    }
    if "sync" in modes and ref is not None:  # StreamRL's Algorithm 1 on this machine's profile
        sync = modes["sync"]
        p_gen = fit_inverse({1: t_gen, 2: statistics.mean(r.gen_s for r in sync.records)})
        p_train = fit_inverse({1: t_train, 2: statistics.mean(r.train_busy_s for r in sync.records)})
        split = allocate_one_pool(os.cpu_count() or 2, p_gen, p_train)
        out["resource_split"] = {"gen_cores": split.gen_units, "train_cores": split.train_units,
                                 "t_gen_s": split.t_gen, "t_train_s": split.t_train,
                                 "profile": {"gen_s": {1: t_gen, 2: p_gen(2)},
                                             "train_s": {1: t_train, 2: p_train(2)}}}
    if "sync" in modes and "async" in modes:
        out["async_over_sync"] = modes["async"].samples_per_s / modes["sync"].samples_per_s
        out["async_reward_over_sync"] = (modes["async"].eval_after["reward"]
                                         / modes["sync"].eval_after["reward"])
        best = max((m for m in ("sync", "sync-t1") if m in modes), key=lambda m: modes[m].samples_per_s)
        out["async_over_best_colocated"] = modes["async"].samples_per_s / modes[best].samples_per_s
        if "async-engine-lp" in modes:
            fast = modes["async-engine-lp"]
            out["async_engine_lp_over_sync"] = fast.samples_per_s / modes["sync"].samples_per_s
            out["async_engine_lp_over_best_colocated"] = fast.samples_per_s / modes[best].samples_per_s
            out["async_engine_lp_reward_over_sync"] = (fast.eval_after["reward"]
                                                       / modes["sync"].eval_after["reward"])
    if args.json:
        print(json.dumps(out))
    else:
        print(f"one batch on one core: T_gen {t_gen:.3f} s, T_train {t_train:.3f} s, "
              f"overlap ceiling {ceiling:.2f}")
        if "resource_split" in out:
            rs = out["resource_split"]
            print(f"resource split (Algorithm 1 on the profile): {rs['gen_cores']} core(s) generate, "
                  f"{rs['train_cores']} train; predicted T_gen {rs['t_gen_s']:.3f} s, "
                  f"T_train {rs['t_train_s']:.3f} s")
        if "async_over_sync" in out:
            print(f"async / sync: {out['async_over_sync']:.2f}x samples/s, reward ratio "
                  f"{out['async_reward_over_sync']:.2f}; async / best colocated: "
                  f"{out['async_over_best_colocated']:.2f}x")
        print(f"load average {out['load_average']}, {out['cpus']} cpus, {out['total_s']:.0f} s in all")


if __name__ == "__main__":
    main()
