"""StreamRL at paper scale, simulated: samples/s of colocated, +skew-aware dispatch, disaggregated
streaming (StreamRL-Sync) and one-step async, for Qwen2.5 7B/32B/72B shapes x 5K/10K/20K output caps.

    python benchmarks/rl/paper_scale.py [--json] [--quick]

Per model a homogeneous H800 pool (7B: 16 GPUs, generation TP1; 32B: 32, TP2; 72B: 64, TP4), 256
prompts x 8 samples per iteration; generation through foundry's multi-instance simulator, training by
the closed form (`foundry.rl.paper_sim`; constants in `foundry.rl.paper_config` and
`docs/rl-simulation.md`). Also: the skew-aware step with an oracle ranker (72B, 20K); a sweep of
training GPUs at fixed generation (7B, 10K) showing where overlap stops paying; H20 generation + H800
training at equal cost (10K). `--quick`: 7B only, 64 prompts. Deterministic: the numbers do not
depend on the machine; the wall time does.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict

os.environ.setdefault("OMP_NUM_THREADS", "1")

from foundry.rl.paper_config import PaperSimConfig, draw_batch  # noqa: E402
from foundry.rl.paper_sim import SYSTEMS, heterogeneous, min_train_gpus, overlap_sweep, run_systems  # noqa: E402

CLUSTERS = {"qwen2.5-7b": (16, 1), "qwen2.5-32b": (32, 2), "qwen2.5-72b": (64, 4)}  # GPUs, generation TP
MAX_LENS = (5000, 10000, 20000)
H800_TO_H20_COST = 2.85  # per machine (reference §2.1)
PAPER = {  # reference §2.5: secondary summaries of arXiv 2504.15930, not checked against the PDF
    "stream_vs_verl": "1.12-2.12x", "stream_vs_colocation": "1.06-1.41x",
    "async": "1.30-2.66x (baseline verl in one summary, ColocationRL in another)",
    "ablation_72b_20k": "1.00 -> +skew 1.08 -> +disaggregation & streaming 1.23 -> +async 1.48 or 1.54",
    "heterogeneous_cost_effectiveness": "1.23-1.31x (Fig. 12), up to 1.33x (abstract)",
}


def config(model: str, max_len: int, quick: bool, **kw: object) -> PaperSimConfig:
    gpus, tp = CLUSTERS[model]
    return PaperSimConfig(model=model, num_gpus=gpus, gen_tp=tp, max_len=max_len,
                          num_prompts=64 if quick else 256, **kw)


def ladder(models: list[str], quick: bool, say: Callable[[str], None]) -> list[dict]:
    rows = []
    for model in models:
        for max_len in MAX_LENS:
            cfg = config(model, max_len, quick)
            res = run_systems(cfg)
            base = res["colocated"].samples_per_s
            rows.append({"model": model, "max_len": max_len, "gpus": cfg.num_gpus,
                         "recall@20%": draw_batch(cfg, cfg.seed).recall(cfg.alpha),
                         **{f"{s}_samples_per_s": res[s].samples_per_s for s in SYSTEMS},
                         **{f"{s}_x": res[s].samples_per_s / base for s in SYSTEMS},
                         "systems": {s: asdict(r) for s, r in res.items()}})
            say(ladder_row(rows[-1]))
    return rows


def ladder_row(r: dict) -> str:
    s, c = r["systems"]["stream"], r["systems"]["colocated"]
    return (f"{r['model']:12s} {r['max_len'] // 1000:3d}K  " + "  ".join(
        f"{r[f'{k}_samples_per_s']:6.2f} ({r[f'{k}_x']:.2f}x)" for k in SYSTEMS)
        + f"   colo T_gen {c['t_gen']:6.1f} T_train {c['t_train']:6.1f}"
        f" | split {s['gen_gpus']}+{s['train_gpus']} T_gen {s['t_gen']:6.1f} T_train {s['t_train']:6.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    ap.add_argument("--quick", action="store_true", help="7B only, 64 prompts (a smoke run)")
    args = ap.parse_args()
    start, cpu = time.perf_counter(), time.process_time()
    models = ["qwen2.5-7b"] if args.quick else list(CLUSTERS)
    out: dict = {"paper": PAPER}
    def say(line: str) -> None:
        if not args.json:
            print(line, flush=True)

    say("samples/s (x colocated):  " + "  ".join(f"{s:>15s}" for s in SYSTEMS))
    out["ladder"] = ladder(models, args.quick, say)

    say("\ngeneration: T_gen colocated (random, skew) vs the longest sample alone; Algorithm 1's estimates "
        "vs the simulated split")
    for r in out["ladder"]:
        c, k, s = (r["systems"][x] for x in ("colocated", "colocated+skew", "stream"))
        say(f" {r['model']:12s} {r['max_len'] // 1000:3d}K  colo {c['t_gen']:6.1f} {k['t_gen']:6.1f}"
            f"  alone {c['extra']['longest_alone_s']:6.1f}   split {s['gen_gpus']:2d}+{s['train_gpus']:2d}"
            f"  T_gen est {s['extra']['predicted_t_gen']:6.1f} sim {s['t_gen']:6.1f}"
            f"  T_train est {s['extra']['predicted_t_train']:6.1f} this batch {s['t_train']:6.1f}")

    big = models[-1]
    oracle = run_systems(config(big, 20000, args.quick, oracle_ranker=True))
    noisy = next(r for r in out["ladder"] if r["model"] == big and r["max_len"] == 20000)
    out["oracle_skew"] = {"model": big, "max_len": 20000,
                          "colocated+skew_x_noisy_ranker": noisy["colocated+skew_x"],
                          "colocated+skew_x_oracle": oracle["colocated+skew"].samples_per_s
                          / oracle["colocated"].samples_per_s}
    say(f"\nskew-aware dispatch, {big} 20K: {noisy['colocated+skew_x']:.3f}x with the ranker (recall "
        f"{noisy['recall@20%']:.2f}), {out['oracle_skew']['colocated+skew_x_oracle']:.3f}x with an oracle")

    cfg = config("qwen2.5-7b", 10000, args.quick)
    trains = [t for t in (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64) if t >= min_train_gpus(cfg)]
    out["sweep"] = overlap_sweep(cfg, 8, trains)
    say("\noverlap vs T_gen/T_train (7B, 10K, 8 generation GPUs):")
    say(" train GPUs  T_gen/T_train   batch s  stream s  async s  async/stream  async/batch")
    for r in out["sweep"]:
        say(f" {r['train_gpus']:10d}  {r['gen_over_train']:13.2f}  {r['batch_s']:8.1f}  {r['stream_s']:8.1f}"
            f"  {r['async_s']:7.1f}  {r['stream_s'] / r['async_s']:12.3f}"
            f"  {r['batch_s'] / r['async_s']:11.3f}")

    out["heterogeneous"] = []
    say("\nH20 generation + H800 training at the cost of the H800 split (10K, async; "
        "cost H800:H20 = 2.85:1):")
    for model in models:
        row10k = next(r for r in out["ladder"] if r["model"] == model and r["max_len"] == 10000)
        homo = row10k["systems"]["async"]
        h20 = max(CLUSTERS[model][1], round(H800_TO_H20_COST * homo["gen_gpus"] / CLUSTERS[model][1])
                  * CLUSTERS[model][1])
        het = heterogeneous(config(model, 10000, args.quick, gen_gpu="h20"), h20, homo["train_gpus"])
        cost_homo = H800_TO_H20_COST * (homo["gen_gpus"] + homo["train_gpus"])
        cost_het = het.gen_gpus + H800_TO_H20_COST * het.train_gpus
        row = {"model": model, "h800_split": [homo["gen_gpus"], homo["train_gpus"]],
               "h800_samples_per_s": homo["samples_per_s"], "h20_pool": h20,
               "hetero_split": [het.gen_gpus, het.train_gpus], "hetero_samples_per_s": het.samples_per_s,
               "hetero_t_gen": het.t_gen, "hetero_t_train": het.t_train,
               "cost_effectiveness_x": (het.samples_per_s / cost_het) / (homo["samples_per_s"] / cost_homo)}
        out["heterogeneous"].append(row)
        say(f" {model:12s} H800 {homo['gen_gpus']}+{homo['train_gpus']}: {homo['samples_per_s']:.2f}/s   "
            f"H20 {het.gen_gpus} (of {h20}) + H800 {het.train_gpus}: {het.samples_per_s:.2f}/s "
            f"(T_gen {het.t_gen:.0f} s, T_train {het.t_train:.0f} s)   samples/s per cost: "
            f"{row['cost_effectiveness_x']:.2f}x")

    out["wall_s"], out["cpu_s"] = time.perf_counter() - start, time.process_time() - cpu
    if args.json:
        print(json.dumps(out))
    else:
        print(f"\nwall {out['wall_s']:.0f} s, CPU {out['cpu_s']:.0f} s")


if __name__ == "__main__":
    main()
