"""Sweeps: policies × arrival rates × burstiness through the simulator, as CSV rows and a plot."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foundry.serve.bench.workloads import Workload
from foundry.serve.config import SchedulerConfig
from foundry.sim.deployment import Deployment
from foundry.sim.run import simulate_report

COLUMNS = ("policy", "rate", "cv", "num_completed", "request_throughput", "ttft_mean", "ttft_p99", "jct_mean",
           "jct_p50", "jct_p95", "jct_p99", "s_per_token_mean", "s_per_token_p95", "num_preemptions",
           "num_swapped_out", "wall_time_s")


def run_sweep(make_workload: Callable[[float, float], Workload], deployment: Deployment,
              scheduler: SchedulerConfig, policies: list[str], rates: list[float], cvs: list[float],
              **sim_kwargs: Any) -> list[dict[str, Any]]:
    """One row per (policy, rate, cv): `scheduler` with each policy in turn; the same workload (seeded)
    for every policy at a point."""
    rows = []
    for cv in cvs:
        for rate in rates:
            workload = make_workload(rate, cv)
            for policy in policies:
                r = simulate_report(workload, deployment, scheduler.with_policy(policy), **sim_kwargs)
                sim = r.info["simulator"]
                rows.append({"policy": policy, "rate": rate, "cv": cv, "num_completed": r.num_completed,
                             "request_throughput": r.request_throughput, "ttft_mean": r.ttft_s.mean,
                             "ttft_p99": r.ttft_s.p99, "jct_mean": r.e2e_s.mean, "jct_p50": r.e2e_s.p50,
                             "jct_p95": r.e2e_s.p95, "jct_p99": r.e2e_s.p99,
                             "s_per_token_mean": r.s_per_output_token.mean,
                             "s_per_token_p95": r.s_per_output_token.p95,
                             "num_preemptions": sim["num_preemptions"],
                             "num_swapped_out": sim["num_swapped_out"],
                             "wall_time_s": sim["wall_time_s"]})
    return rows


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    with Path(path).open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)


def plot(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Mean JCT, P99 JCT and mean s/token against the swept axis (rate, or CV when one rate), per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({r["rate"] for r in rows})
    cvs = sorted({r["cv"] for r in rows})
    x_key = "cv" if len(rates) == 1 and len(cvs) > 1 else "rate"
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, label) in zip(axes, (("jct_mean", "mean JCT (s)"), ("jct_p99", "P99 JCT (s)"),
                                       ("s_per_token_mean", "mean s / output token")), strict=True):
        for policy in dict.fromkeys(r["policy"] for r in rows):
            for cv in (cvs if x_key == "rate" else [None]):
                pts = sorted((r[x_key], r[key]) for r in rows
                             if r["policy"] == policy and (cv is None or r["cv"] == cv))
                name = policy if cv is None or len(cvs) == 1 else f"{policy} cv={cv:g}"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xlabel("arrival rate (req/s)" if x_key == "rate" else "arrival CV (burstiness)")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
