"""A Gantt chart of a fused schedule: one row per node (the actor stage and the critic stage it hosts),
actor/critic forward/backward in four colours."""

from __future__ import annotations

from pathlib import Path

from foundry.rl.fused.config import FusedConfig
from foundry.rl.fused.schedule import Task, _duration, evaluate_schedule

COLOURS = {(0, False): "#9ecae1", (0, True): "#2171b5", (1, False): "#fdae6b", (1, True): "#d94801"}
LABELS = {(0, False): "actor forward", (0, True): "actor backward", (1, False): "critic forward",
          (1, True): "critic backward"}


def plot_gantt(cfg: FusedConfig, schedule: list[list[Task]], out: Path, title: str = "") -> None:
    """Draw `schedule` (checked by :func:`evaluate_schedule`) to `out`; bars carry their micro-batch
    number when the chart is small enough to read them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ev = evaluate_schedule(cfg, schedule)
    n_tasks = sum(len(o) for o in schedule)
    height = 0.45 * cfg.nodes + 1.4
    fig, ax = plt.subplots(figsize=(max(8.0, min(24.0, ev.makespan / 12)), height))
    for n, order in enumerate(schedule):
        for t in order:
            d = _duration(cfg, t)
            start = ev.finish[t] - d
            ax.barh(n, d, left=start, height=0.8, color=COLOURS[t.model, t.backward], edgecolor="white",
                    linewidth=0.4)
            if n_tasks <= 800:
                ax.text(start + d / 2, n, str(t.mb), ha="center", va="center", fontsize=5)
    ax.set_yticks(range(cfg.nodes),
                  [f"node {n}: A{n} / C{cfg.critic_stage(n)}" for n in range(cfg.nodes)], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, ev.makespan)
    ax.set_xlabel("time (units)")
    ax.set_title(title or f"makespan {ev.makespan}, peak memory {ev.peak_memory}", fontsize=9)
    fig.legend(handles=[Patch(color=c, label=LABELS[k]) for k, c in COLOURS.items()], ncol=4, fontsize=7,
               loc="lower center", frameon=False)
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
