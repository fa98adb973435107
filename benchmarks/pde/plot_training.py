"""Append a training stage's log to the shipped checkpoint's history and redraw its curve.

    python benchmarks/pde/plot_training.py --stage-log out/pde/xs_round2/log.jsonl --stage 4 \
        --train-data train_s10_adv.h5 [--history docs/figures/pde/xs_train_log.jsonl]

The history file holds every stage on one step axis (``step``; ``stage_step`` within the stage); the
new stage starts after the history's last step. Writes the extended history to ``--out-log`` (default:
the history itself) and the figure (training loss, held-out relative L2) to ``--figure``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", default="docs/figures/pde/xs_train_log.jsonl")
    ap.add_argument("--stage-log", required=True)
    ap.add_argument("--stage", type=int, required=True)
    ap.add_argument("--train-data", default=None)
    ap.add_argument("--out-log", default=None)
    ap.add_argument("--figure", default="docs/figures/pde/xs_training.png")
    args = ap.parse_args()
    history = [json.loads(line) for line in Path(args.history).read_text().splitlines() if line.strip()]
    history = [r for r in history if r.get("stage") != args.stage]  # rerunnable: replace the stage
    offset = max(r["step"] for r in history)
    for line in Path(args.stage_log).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        r = {**r, "stage_step": r["step"], "step": offset + r["step"], "stage": args.stage}
        if args.train_data:
            r["train_data"] = args.train_data
        history.append(r)
    Path(args.out_log or args.history).write_text("".join(json.dumps(r) + "\n" for r in history))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    train = [r for r in history if "loss" in r]
    test = [r for r in history if r.get("test_rel_l2") is not None]
    ax.plot(
        [r["step"] for r in train],
        [r["loss"] for r in train],
        lw=0.6,
        alpha=0.6,
        label="training loss (NRMSE)",
    )
    ax.plot([r["step"] for r in test], [r["test_rel_l2"] for r in test], "o-", ms=3, label="held-out rel. L2")
    for stage in sorted({r.get("stage", 1) for r in history})[1:]:
        start = min(r["step"] for r in history if r.get("stage", 1) == stage)
        ax.axvline(start, color="grey", lw=0.8, ls=":")
        ax.text(start, 0.95, f" stage {stage}", transform=ax.get_xaxis_transform(), fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step (batch 16)")
    ax.set_title(f"{Path(args.figure).stem}: training, all stages")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.figure, dpi=120)
    print(f"wrote {args.out_log or args.history} and {args.figure}")


if __name__ == "__main__":
    main()
