"""LoongServe at paper scale, in simulation: max throughput under each dataset's SLO, ours beside the paper's.

    python benchmarks/sim/loongserve_repro.py [--json] [--quick | --num-requests N] [--datasets ...]
        [--systems ...] [--no-sensitivity] [--output docs/sim/loongserve_repro.json]
        [--plot docs/figures/sim/loongserve_repro.png]

LWM-7B-like on 8 A800-like GPUs: step models fitted to LoongServe's published calibration points
(`foundry.sim.elastic.calibration`, derived layouts labelled), look-alike length distributions
(`workloads.py`, each assumption stated there), Poisson arrivals. Per dataset (ShareGPT, LEval, LV-Eval,
Mixed) LoongServe against SplitFuse, vLLM and disaggregation, scored by mean per-token latency / SLO;
per Zipf alpha (1.0, 1.2, 1.4) LoongServe against the three static layouts, scored by 90% attainment
of Fig. 12's TTFT/TPOT SLO (`slo.py`). Max throughput = the interpolated rate where the score crosses 1.

With --json, stdout has one line per (dataset, system): {"dataset", "system", "max_rps"}; the tables go
to stderr. The full result (search points, conditions, the paper's numbers) goes to --output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from foundry.sim.elastic.calibration import LWM7BA800, fit_table  # noqa: E402
from foundry.sim.elastic.slo import SLO_S, find_max_rate, per_token_score, zipf_score  # noqa: E402
from foundry.sim.elastic.systems import run_system  # noqa: E402
from foundry.sim.elastic.workloads import LengthParams, dataset_workload, describe  # noqa: E402

DATASETS = ("sharegpt", "leval", "lveval", "mixed")
ZIPFS = ("zipf-1.0", "zipf-1.2", "zipf-1.4")
MAIN_SYSTEMS = ("loongserve", "splitfuse", "vllm", "disagg")
ZIPF_SYSTEMS = ("loongserve", "static-tp8", "static-tp2-sp4", "static-tp2x4")
# ShareGPT's per-token SLO (92 ms) is lax for its short requests: only a long overloaded run's queue reaches
# it, so where each system crosses it depends on the number of requests (with 800 none crossed; with
# 3,000 all but vLLM, 0.94 at 813 req/s; 4,000 brackets all four)
NUM_REQUESTS = {"sharegpt": 4000, "leval": 500, "lveval": 150, "mixed": 300, "zipf": 600}

# Serving reference §3.7 (LoongServe AE notebook), max throughput in req/s.
PAPER = {
    ("sharegpt", "loongserve"): 29.47, ("sharegpt", "vllm"): 6.35, ("sharegpt", "disagg"): 10.37,
    ("sharegpt", "splitfuse"): 23.13,
    ("leval", "loongserve"): 2.416, ("leval", "vllm"): 1.144, ("leval", "disagg"): 0.415,
    ("leval", "splitfuse"): 1.231,
    ("lveval", "loongserve"): 0.201, ("lveval", "vllm"): 0.090, ("lveval", "splitfuse"): 0.082,
    ("mixed", "loongserve"): 0.553, ("mixed", "vllm"): 0.208, ("mixed", "splitfuse"): 0.144,
    ("zipf-1.0", "loongserve"): 1.122, ("zipf-1.0", "static-tp8"): 1.122 / 2.77,
    ("zipf-1.0", "static-tp2-sp4"): 1.122 / 2.33, ("zipf-1.0", "static-tp2x4"): 1.122 / 3.12,
    ("zipf-1.2", "loongserve"): 2.925, ("zipf-1.4", "loongserve"): 8.757,
}
PAPER_ZIPF_SPEEDUP = {"zipf-1.0": "2.33-3.12x", "zipf-1.2": "1.98-2.27x", "zipf-1.4": "1.53-1.75x"}
HEADLINES = (  # (dataset, baseline, the paper's LoongServe speed-up, what it is)
    ("mixed", "splitfuse", 3.85, "3.85x vs LightLLM-SplitFuse on Mixed (per-token SLO 70 ms)"),
    ("leval", "disagg", 5.81, "5.81x vs DistServe on LEval (per-token SLO 3.5 ms)"),
)
# Sensitivity: one assumption moved, LoongServe and one baseline re-measured.
SENSITIVITY = (
    ("sharegpt", "splitfuse", "ShareGPT prompt median 700 -> 350 tokens",
     {"sharegpt_prompt_median": 350.0}),
    ("leval", "disagg", "LEval p10/p90 5k/21k -> 2.5k/10.5k tokens",
     {"leval_p10": 2500.0, "leval_p90": 10500.0}),
    ("lveval", "splitfuse", "LV-Eval 1.3 -> 1.0 tokens per word", {"lveval_tokens_per_word": 1.0}),
    ("mixed", "splitfuse", "every prompt capped at 200k tokens", {"max_prompt_len": 200_000}),
)


def start_rate(dataset: str, system: str) -> float:
    return PAPER.get((dataset, system)) or PAPER.get((dataset, "loongserve"), 1.0) / 2


def measure(dataset: str, system: str, models: LWM7BA800, n: int, seed: int, params: LengthParams,
            max_evals: int) -> dict:
    is_zipf = dataset.startswith("zipf")

    def score(rate: float) -> float:
        w = dataset_workload(dataset, rate, n, seed, params)
        recs = run_system(system, w, dataset, models)
        return zipf_score(recs, models.sp4_tp2) if is_zipf else per_token_score(recs, dataset)

    t0 = time.process_time()
    res = find_max_rate(score, start_rate(dataset, system), max_evals=max_evals)
    return {"dataset": dataset, "system": system, "max_rps": res.rate, "bracketed": res.bracketed,
            "points": [[r, s if math.isfinite(s) else None] for r, s in res.points], "num_requests": n,
            "seed": seed, "cpu_s": time.process_time() - t0}


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _bracketed(points: list) -> bool:
    """A search bracketed the crossing: one rate passed (score <= 1) and one failed (> 1 or infinite)."""
    passed = any(sc is not None and sc <= 1 for _, sc in points)
    return passed and any(sc is None or sc > 1 for _, sc in points)


def _rate(rate: float, bracketed: bool) -> str:
    return f"{rate:.3f}" if bracketed else f">= {rate:.3g} (not bracketed)"


def tables(rows: list[dict], sens: list[dict]) -> str:
    """Markdown tables; a ratio involving a search that did not bracket its crossing is left out ("-")."""
    by = {(r["dataset"], r["system"]): r["max_rps"] for r in rows if _bracketed(r["points"])}
    out = ["| dataset | system | ours max req/s | paper max req/s | ours LoongServe / system | "
           "paper LoongServe / system | SLO (score) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        d, s = r["dataset"], r["system"]
        slo = (f"mean per-token <= {SLO_S[d][0] * 1e3:g} ms" if d in SLO_S
               else "90% within TTFT<=max(25x prefill@SP4TP2, 15 s), TPOT<=50 ms")
        ours = _ratio(by.get((d, "loongserve")), by.get((d, s))) if s != "loongserve" else "-"
        paper = _ratio(PAPER.get((d, "loongserve")), PAPER.get((d, s))) if s != "loongserve" else "-"
        if d in PAPER_ZIPF_SPEEDUP and s != "loongserve":
            paper += f" ({PAPER_ZIPF_SPEEDUP[d]} over the three)"
        theirs = f"{PAPER[(d, s)]:.3f}" if (d, s) in PAPER else "-"
        out.append(f"| {d} | {s} | {_rate(r['max_rps'], _bracketed(r['points']))} | {theirs} | {ours} | "
                   f"{paper} | {slo} |")
    out += ["", "| headline | paper | ours |", "|---|---|---|"]
    for d, b, paper, what in HEADLINES:
        out.append(f"| {what} | {paper:.2f}x | {_ratio(by.get((d, 'loongserve')), by.get((d, b)))} |")
    for z in ZIPFS:
        ours = [by[(z, "loongserve")] / by[(z, s)] for s in ZIPF_SYSTEMS[1:]
                if (z, "loongserve") in by and by.get((z, s))]
        span = f"{min(ours):.2f}-{max(ours):.2f}x" if ours else "-"
        out.append(f"| ESP vs static SP (TP8, TP2·SP4, TP2x4), {z} | {PAPER_ZIPF_SPEEDUP[z]} | {span} |")
    if sens:
        out += ["", "| sensitivity (one assumption moved) | system | system max req/s (base -> moved) | "
                "LoongServe max req/s (base -> moved) | LoongServe / system (base -> moved) |",
                "|---|---|---|---|---|"]
        for x in sens:
            d, s = x["dataset"], x["system"]
            moved_ok, ls_ok = _bracketed(x["points"]), _bracketed(x["loongserve_points"])
            base = next(r for r in rows if (r["dataset"], r["system"]) == (d, s))
            ls_base = next(r for r in rows if (r["dataset"], r["system"]) == (d, "loongserve"))
            moved = _ratio(x["loongserve_max_rps"] if ls_ok else None, x["max_rps"] if moved_ok else None)
            out.append(f"| {x['what']} | {s} | {_rate(base['max_rps'], _bracketed(base['points']))} -> "
                       f"{_rate(x['max_rps'], moved_ok)} | "
                       f"{_rate(ls_base['max_rps'], _bracketed(ls_base['points']))} -> "
                       f"{_rate(x['loongserve_max_rps'], ls_ok)} | "
                       f"{_ratio(by.get((d, 'loongserve')), by.get((d, s)))} -> {moved} |")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(DATASETS, MAIN_SYSTEMS, "vs chunked prefill, vLLM, disaggregation (per-token SLO)"),
              (ZIPFS, ZIPF_SYSTEMS, "Zipf: ESP vs static SP (90% TTFT/TPOT SLO)")]
    by = {(r["dataset"], r["system"]): r["max_rps"] for r in rows if _bracketed(r["points"])}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for ax, (dsets, systems, title) in zip(axes, groups, strict=True):
        width = 0.8 / len(systems)
        for j, s in enumerate(systems):
            xs = [i + j * width for i in range(len(dsets))]
            ours = [by[(d, s)] / by[(d, "loongserve")] if (d, s) in by and (d, "loongserve") in by
                    else math.nan for d in dsets]  # (a search that did not bracket its crossing: no bar)
            paper = [(PAPER.get((d, s)) or math.nan) / PAPER.get((d, "loongserve"), math.nan) for d in dsets]
            bars = ax.bar(xs, ours, width, label=s)
            ax.scatter(xs, paper, marker="_", s=300, color="black", zorder=3,
                       label="paper" if j == 0 else None)
            for b in bars:
                b.set_alpha(0.85)
        ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(dsets))], dsets)
        ax.set_ylabel("max throughput / LoongServe's")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("LoongServe reproduction in simulation (LWM-7B-like, 8 A800-like GPUs); bars ours, "
                 "black ticks the paper", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="one JSON line per (dataset, system) on stdout")
    ap.add_argument("--quick", action="store_true", help="a bounded run: a third of the requests, 6 rates")
    ap.add_argument("--num-requests", type=int, default=None, help="requests per run (every dataset)")
    ap.add_argument("--datasets", default=",".join(DATASETS + ZIPFS))
    ap.add_argument("--systems", default=None, help="restrict to these systems (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-sensitivity", action="store_true")
    ap.add_argument("--output", type=Path, default=None, help="write the full result JSON here")
    ap.add_argument("--plot", type=Path, default=None, help="write the figure here")
    ap.add_argument("--report", type=Path, default=None,
                    help="only re-render the tables (and --plot) from a result JSON written by --output")
    args = ap.parse_args(argv)
    if args.report is not None:
        saved = json.loads(args.report.read_text())
        print(tables(saved["rows"], saved["sensitivity"]))
        if args.plot is not None:
            plot(saved["rows"], args.plot)
        return
    log = sys.stderr if args.json else sys.stdout
    models = LWM7BA800.fit()
    print("Cost-model fit to LoongServe's calibration points (serving reference §3.8):\n" + fit_table(models),
          file=log)
    tp1p, tp1d = models.tp1_check()
    print(f"derivation check, SP1·TP1 batch 1 x 1000 tokens from SP4·TP2 scaled x8: prefill {tp1p:.1f} ms "
          f"(published 68.9), decode {tp1d:.1f} ms (published 13.0)\n", file=log)
    wanted = [d for d in args.datasets.split(",") if d]
    only = set(args.systems.split(",")) if args.systems else None
    max_evals = 6 if args.quick else 8
    params = LengthParams()
    rows: list[dict] = []
    for d in wanted:
        fam = "zipf" if d.startswith("zipf") else d
        n = args.num_requests or (NUM_REQUESTS[fam] // 3 if args.quick else NUM_REQUESTS[fam])
        for s in ZIPF_SYSTEMS if d.startswith("zipf") else MAIN_SYSTEMS:
            if only is not None and s not in only:
                continue
            row = measure(d, s, models, n, args.seed, params, max_evals)
            rows.append(row)
            if args.json:
                print(json.dumps({"dataset": d, "system": s, "max_rps": row["max_rps"],
                                  "bracketed": row["bracketed"]}), flush=True)
            print(f"{d:>9} {s:>15}: max {row['max_rps']:.4g} req/s ({len(row['points'])} runs of {n} "
                  f"requests, {row['cpu_s']:.1f} CPU-s)", file=log, flush=True)
    sens: list[dict] = []
    if not args.no_sensitivity and not args.quick:
        for d, s, what, change in SENSITIVITY:
            if d not in wanted or (only is not None and s not in only):
                continue
            p = replace(params, **change)
            n = args.num_requests or NUM_REQUESTS[d]
            a = measure(d, "loongserve", models, n, args.seed, p, max_evals)
            b = measure(d, s, models, n, args.seed, p, max_evals)
            sens.append({**b, "what": what, "change": change, "loongserve_max_rps": a["max_rps"],
                         "loongserve_bracketed": a["bracketed"], "loongserve_points": a["points"]})
            print(f"sensitivity {what}: loongserve {a['max_rps']:.4g}, {s} {b['max_rps']:.4g} req/s",
                  file=log, flush=True)
    print("\n" + tables(rows, sens), file=log)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        stats = {d: describe(d, params=params) for d in wanted}
        args.output.write_text(json.dumps({
            "conditions": {"model": "LWM-7B-like (Llama-2-7B shape)", "gpus": "8 A800-80GB-like",
                           "cost_models": {"sp1-tp8": models.sp1_tp8.describe(),
                                           "sp2-tp4": models.sp2_tp4.describe(),
                                           "sp4-tp2": models.sp4_tp2.describe()},
                           "length_params": {k: v for k, v in vars(params).items()},
                           "length_stats": stats, "arrivals": "Poisson, rescaled to the exact rate",
                           "quick": args.quick},
            "rows": rows, "sensitivity": sens,
            "paper": [{"dataset": d, "system": s, "max_rps": v} for (d, s), v in PAPER.items()],
        }, indent=1) + "\n")
    if args.plot is not None:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
