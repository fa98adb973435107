"""Curves of RL runs: training reward and samples/s per step, one line per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_runs(runs: dict[str, list[dict[str, Any]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, rows in runs.items():
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, [r["reward"] for r in rows], label=name)
        axes[1].plot(steps, [r["samples_per_s"] for r in rows], label=name)
        elapsed, t = [], 0.0
        for r in rows:
            t += r.get("iteration_s", 0.0)
            elapsed.append(t)
        axes[2].plot(elapsed, [r["reward"] for r in rows], label=name)
    for ax, (x, y) in zip(axes, [("step", "batch reward"), ("step", "samples/s"),
                                  ("wall time of the RL steps (s)", "batch reward")], strict=True):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
