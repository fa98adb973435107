"""Benchmark metrics: per-request records, their summary statistics, and the table / JSON views.

Definitions (all per request, times measured by the client):

- TTFT: first output token received − request sent;
- TPOT: (last token − first token) / (output tokens − 1), for requests with at least 2 output tokens;
- E2E latency (job completion time, JCT): last token − request sent;
- seconds per output token: E2E / output tokens (FastServe's normalised latency);
- throughput: completed requests and output tokens over the makespan (first send to last finish).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

PERCENTILES = (50, 95, 99)


@dataclass
class RequestRecord:
    """What the client saw of one request. Times are seconds from the start of the run."""

    prompt_len: int
    target_output_len: int
    send_time: float
    first_token_time: float | None = None
    finish_time: float | None = None
    num_output_tokens: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.finish_time is not None and self.num_output_tokens > 0

    @property
    def ttft(self) -> float:
        assert self.first_token_time is not None
        return self.first_token_time - self.send_time

    @property
    def e2e(self) -> float:
        assert self.finish_time is not None
        return self.finish_time - self.send_time

    @property
    def tpot(self) -> float | None:
        if self.num_output_tokens < 2 or self.first_token_time is None or self.finish_time is None:
            return None
        return (self.finish_time - self.first_token_time) / (self.num_output_tokens - 1)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between order statistics (numpy's default)."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"q: must be in [0, 100], got {q}")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class LatencyStats:
    mean: float
    p50: float
    p95: float
    p99: float

    @staticmethod
    def of(values: list[float]) -> LatencyStats:
        mean = sum(values) / len(values) if values else math.nan
        return LatencyStats(mean, *(percentile(values, q) for q in PERCENTILES))


@dataclass
class BenchResult:
    num_requests: int
    num_completed: int
    num_failed: int
    duration_s: float
    request_throughput: float  # completed requests / s
    output_throughput: float  # output tokens / s
    total_prompt_tokens: int
    total_output_tokens: int
    ttft_s: LatencyStats
    tpot_s: LatencyStats
    e2e_s: LatencyStats
    s_per_output_token: LatencyStats
    info: dict[str, Any] = field(default_factory=dict)
    records: list[RequestRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self, with_records: bool = False) -> dict[str, Any]:
        """Plain data for JSON; undefined statistics (NaN) and infinite settings become None (null)."""
        out = asdict(self)
        if not with_records:
            out.pop("records")
        return _finite(out)


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def summarize(records: list[RequestRecord], info: dict[str, Any] | None = None) -> BenchResult:
    """Summary statistics over the completed requests of a run."""
    done = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    if records:
        start = min(r.send_time for r in records)
        end = max((r.finish_time for r in done), default=start)
        duration = end - start
    else:
        duration = 0.0
    out_tokens = sum(r.num_output_tokens for r in done)
    tpots = [t for r in done if (t := r.tpot) is not None]
    return BenchResult(
        num_requests=len(records),
        num_completed=len(done),
        num_failed=len(failed),
        duration_s=duration,
        request_throughput=len(done) / duration if duration > 0 else math.nan,
        output_throughput=out_tokens / duration if duration > 0 else math.nan,
        total_prompt_tokens=sum(r.prompt_len for r in done),
        total_output_tokens=out_tokens,
        ttft_s=LatencyStats.of([r.ttft for r in done]),
        tpot_s=LatencyStats.of(tpots),
        e2e_s=LatencyStats.of([r.e2e for r in done]),
        s_per_output_token=LatencyStats.of([r.e2e / r.num_output_tokens for r in done]),
        info=dict(info or {}),
        records=list(records),
        errors=sorted({r.error for r in failed if r.error})[:10],
    )


def render_table(result: BenchResult):
    """A rich ``Table`` of the result, its summary line as the caption."""
    from rich.table import Table

    title = "foundry serve bench" + (f" ({result.info['target']})" if "target" in result.info else "")
    table = Table(title=title, caption_justify="left")
    table.add_column("metric")
    for col in ("mean", "p50", "p95", "p99"):
        table.add_column(col, justify="right")
    for name, stats, scale, digits in (
        ("TTFT (ms)", result.ttft_s, 1000.0, 1),
        ("TPOT (ms)", result.tpot_s, 1000.0, 2),
        ("E2E latency, JCT (s)", result.e2e_s, 1.0, 3),
        ("s per output token", result.s_per_output_token, 1.0, 4),
    ):
        table.add_row(
            name, *(f"{v * scale:.{digits}f}" for v in (stats.mean, stats.p50, stats.p95, stats.p99))
        )
    table.caption = (
        f"{result.num_completed}/{result.num_requests} completed, {result.num_failed} failed, "
        f"{result.duration_s:.2f} s\n{result.request_throughput:.2f} req/s, "
        f"{result.output_throughput:.1f} output tok/s"
    )
    return table
