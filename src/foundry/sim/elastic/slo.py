"""Per-dataset SLOs and the max-throughput search: the rate at which the SLO-normalised latency crosses 1.

Metrics (LoongServe's `lib_benchmark_serving/metrics.py`, serving reference §3.6), per request:
per-token latency = E2E / (input + output tokens); input-token latency = TTFT / input; output-token
latency = TPOT.

**Main comparison (§3.7's table).** Score = mean per-token latency over the run's requests / the
dataset's per-token SLO (ShareGPT 92 ms, LEval 3.5 ms, LV-Eval 2.5 ms, Mixed 70 ms). That table is
"max throughput by per-token latency"; the input/output SLO columns are reported beside it
(`latency_summary`) but do not enter the score. A run with an unfinished request scores infinity.

**Zipf against static SP (Fig. 12's ablation SLO).** A request attains its SLO when TTFT <=
max(25 x its own prefill alone under SP4·TP2, 15 s) and TPOT <= 50 ms (a one-token output has no TPOT
and passes on TTFT alone); score = (1 - attainment) / (1 - 0.9), <= 1 exactly when >= 90% attain.

**Max throughput.** `find_max_rate` brackets the crossing by doubling or halving the rate, narrows it
geometrically to `rel_tol`, and returns the linear interpolation of the score between the last rate
that passed and the first that failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from foundry.serve.bench.report import RequestRecord
from foundry.sim.elastic.calibration import StepModel

# dataset -> (per-token, input-token, output-token) SLO in seconds per token (§3.6)
SLO_S: dict[str, tuple[float, float, float]] = {
    "sharegpt": (0.092, 0.020, 0.320),
    "leval": (0.0035, 0.0018, 0.320),
    "lveval": (0.0025, 0.0025, 0.365),
    "mixed": (0.070, 0.090, 0.360),
}
ZIPF_TTFT_FACTOR, ZIPF_TTFT_FLOOR_S, ZIPF_TPOT_S, ZIPF_ATTAINMENT = 25.0, 15.0, 0.050, 0.90


def per_token_latency(records: Sequence[RequestRecord]) -> float:
    """Mean E2E / (input + output) over the requests; inf if any did not finish."""
    if not records or any(not r.ok for r in records):
        return math.inf
    return sum(r.e2e / (r.prompt_len + r.num_output_tokens) for r in records) / len(records)


def latency_summary(records: Sequence[RequestRecord]) -> dict[str, float]:
    """Mean per-token, input-token and output-token latency (s/token) over the finished requests."""
    ok = [r for r in records if r.ok]
    if not ok:
        return {"per_token": math.inf, "input_token": math.inf, "output_token": math.inf}
    tpots = [t for r in ok if (t := r.tpot) is not None]
    return {"per_token": sum(r.e2e / (r.prompt_len + r.num_output_tokens) for r in ok) / len(ok),
            "input_token": sum(r.ttft / r.prompt_len for r in ok) / len(ok),
            "output_token": sum(tpots) / len(tpots) if tpots else 0.0}


def per_token_score(records: Sequence[RequestRecord], dataset: str) -> float:
    if dataset not in SLO_S:
        raise ValueError(f"dataset: no per-token SLO for {dataset!r}; known: {', '.join(SLO_S)}")
    return per_token_latency(records) / SLO_S[dataset][0]


def zipf_attainment(records: Sequence[RequestRecord], sp4_tp2: StepModel) -> float:
    """Fraction of requests within Fig. 12's TTFT and TPOT SLO (unfinished ones miss it)."""
    if not records:
        return 0.0
    good = 0
    for r in records:
        if not r.ok:
            continue
        n = r.prompt_len
        ttft_slo = max(ZIPF_TTFT_FACTOR * sp4_tp2.prefill_time(n, n * n), ZIPF_TTFT_FLOOR_S)
        tpot = r.tpot
        good += r.ttft <= ttft_slo and (tpot is None or tpot <= ZIPF_TPOT_S)
    return good / len(records)


def zipf_score(records: Sequence[RequestRecord], sp4_tp2: StepModel) -> float:
    return (1.0 - zipf_attainment(records, sp4_tp2)) / (1.0 - ZIPF_ATTAINMENT)


@dataclass
class MaxRate:
    rate: float  # interpolated crossing (req/s); the lowest rate tried when even it failed
    bracketed: bool  # a passing and a failing rate were both found
    points: list[tuple[float, float]] = field(default_factory=list)  # (rate, score) in the order tried


def find_max_rate(score_at: Callable[[float], float], start: float, *, rel_tol: float = 0.08,
                  max_evals: int = 9) -> MaxRate:
    """The rate at which `score_at` (<= 1: within the SLO) crosses 1, assumed to grow with the rate."""
    if not start > 0:
        raise ValueError(f"start: must be > 0 req/s, got {start}")
    points: list[tuple[float, float]] = []

    def ev(r: float) -> float:
        s = score_at(r)
        points.append((r, s))
        return s

    lo = hi = None  # (rate, score) passing / failing
    r = start
    while len(points) < max_evals and (lo is None or hi is None):
        s = ev(r)
        if s <= 1.0:
            lo = (r, s)
            r = r * 2 if hi is None else math.sqrt(r * hi[0])
        else:
            hi = (r, s)
            r = r / 2 if lo is None else math.sqrt(r * lo[0])
    while lo is not None and hi is not None and hi[0] / lo[0] > 1 + rel_tol and len(points) < max_evals:
        mid = math.sqrt(lo[0] * hi[0])
        s = ev(mid)
        if s <= 1.0:
            lo = (mid, s)
        else:
            hi = (mid, s)
    if lo is None:
        return MaxRate(min(p[0] for p in points), False, points)
    if hi is None:
        return MaxRate(lo[0], False, points)
    (r0, s0), (r1, s1) = lo, hi
    rate = r0 if not math.isfinite(s1) else r0 + (1.0 - s0) * (r1 - r0) / (s1 - s0)
    return MaxRate(rate, True, points)
