"""The length ranker's online learning curve: recall of the true top-20% longest and Kendall tau-b on a
fixed held-out set, after each update on a fresh batch of prompts.

Each task is run with three kinds of observed length (what `update` sees; evaluation always uses the
task's true answer lengths):

- ``true``: the answer length, as a perfect policy would produce it;
- ``noisy``: times log-normal noise (sigma `--sigma`), a stand-in for a group's mean completion length
  under a policy that is not yet exact;
- ``runaway``: noisy, and a `--runaway` fraction of lengths at the generation cap, as when a policy
  forgets to stop.

The `labels` row scores the observed lengths themselves against the truth: the quality of what the
ranker learns from (a ranker can beat it by pooling over prompts). Lengths tie, so scores that do not
tie give Kendall tau-b below 1 even when they rank perfectly; that ceiling is printed too. Step 0 is the
untrained ranker (its prior: the prompt's token count). `reverse` is the control: its answer length is
the prompt's minus one, so the prior is already exact and the question is what learning from noisy
lengths costs.

    OMP_NUM_THREADS=1 python benchmarks/rl/ranker.py [--tasks rle] [--seeds 3] [--json]

One core: ~40 s as it stands (both tasks, one seed); ~1 min per task with `--seeds 3`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

import torch

from foundry.rl.ranker import LengthRanker, kendall_tau, recall_at
from foundry.rl.tasks import make_task

VARIANTS = ("true", "noisy", "runaway")


def observed(lengths: list[int], variant: str, cap: int, sigma: float, runaway: float,
             rng: random.Random) -> list[float]:
    if variant == "true":
        return [float(x) for x in lengths]
    noisy = [max(1.0, x * rng.lognormvariate(0.0, sigma)) for x in lengths]
    if variant == "noisy":
        return noisy
    return [float(cap) if rng.random() < runaway else x for x in noisy]


def curve(task_name: str, variant: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One seed: the ranker's recall and tau after each update, those of the observed lengths themselves
    (drawn once for the held-out prompts: how good the labels it learns from are), and tau-b's ceiling."""
    task = make_task(task_name)
    held = task.prompts(args.held_out, seed=10**6 + seed)  # disjoint from the training seeds below
    texts, truth = [p.text for p in held], [len(p.answer) for p in held]
    ranker = LengthRanker(seed=seed, hidden=args.hidden, layers=args.layers)
    rng = random.Random(seed)
    rows, t0 = [], time.monotonic()
    for step in range(args.updates + 1):
        if step > 0:
            batch = task.prompts(args.batch, seed=seed * 1000 + step)
            lengths = observed([len(p.answer) for p in batch], variant, task.max_new_tokens, args.sigma,
                               args.runaway, rng)
            ranker.update([p.text for p in batch], lengths)
        scores = ranker.scores(texts)
        rows.append({"recall": recall_at(scores, truth, args.alpha), "tau": kendall_tau(scores, truth),
                     "wall_s": time.monotonic() - t0})
    labels = observed(truth, variant, task.max_new_tokens, args.sigma, args.runaway, random.Random(-1 - seed))
    tie_free = [t + 1e-6 * i for i, t in enumerate(truth)]  # ranks perfectly, never ties
    return {"steps": rows, "labels": {"recall": recall_at(labels, truth, args.alpha),
                                      "tau": kendall_tau(labels, truth)},
            "tau_ceiling": kendall_tau(tie_free, truth)}


def averaged(task_name: str, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """`curve`'s numbers, each the mean over seeds `seed .. seed + seeds - 1`."""
    runs = [curve(task_name, variant, args.seed + k, args) for k in range(args.seeds)]

    def mean(rows: list[dict[str, float]]) -> dict[str, float]:
        return {key: statistics.fmean(r[key] for r in rows) for key in rows[0]}

    return {"steps": [mean([r["steps"][i] for r in runs]) for i in range(args.updates + 1)],
            "labels": mean([r["labels"] for r in runs]),
            "tau_ceiling": statistics.fmean(r["tau_ceiling"] for r in runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="rle,reverse")
    ap.add_argument("--updates", type=int, default=16)
    ap.add_argument("--batch", type=int, default=128, help="fresh prompts per update")
    ap.add_argument("--held-out", type=int, default=400)
    ap.add_argument("--alpha", type=float, default=0.2)
    ap.add_argument("--sigma", type=float, default=0.5, help="log-normal noise on observed lengths")
    ap.add_argument("--runaway", type=float, default=0.1, help="fraction of observed lengths at the cap")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1, help="average each number over this many seeds")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = {task: {v: averaged(task, v, args) for v in VARIANTS} for task in args.tasks.split(",")}
    if args.json:
        print(json.dumps({"args": vars(args), "results": results}, indent=1))
        return
    for task, by_variant in results.items():
        print(f"\n{task}: recall@{args.alpha:.0%} / Kendall tau-b on {args.held_out} held-out prompts "
              f"({args.batch} fresh prompts per update; mean of {args.seeds} seed(s))")
        print("  step  " + "  ".join(f"{v:>15}" for v in VARIANTS))
        for step in range(args.updates + 1):
            cells = [by_variant[v]["steps"][step] for v in VARIANTS]
            print(f"{step:>6}  " + "  ".join(f"{c['recall']:6.3f} / {c['tau']:6.3f}" for c in cells))
        cells = [by_variant[v]["labels"] for v in VARIANTS]
        print("labels  " + "  ".join(f"{c['recall']:6.3f} / {c['tau']:6.3f}" for c in cells))
        print(f"tau-b ceiling for tie-free scores: {by_variant[VARIANTS[0]]['tau_ceiling']:.3f}")
        print("wall per seed: " + ", ".join(f"{v} {by_variant[v]['steps'][-1]['wall_s']:.1f} s"
                                            for v in VARIANTS))


if __name__ == "__main__":
    main()
