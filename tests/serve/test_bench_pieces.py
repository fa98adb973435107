"""Load-generator pieces: arrival statistics, the trace reader, length fits, percentile math."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from foundry.serve.bench.arrivals import arrival_times, coefficient_of_variation, gamma_gaps
from foundry.serve.bench.report import LatencyStats, RequestRecord, percentile, summarize
from foundry.serve.bench.trace import read_trace
from foundry.serve.bench.workloads import (
    AZURE_2023_STATS,
    Pareto,
    PiecewiseLogQuantile,
    RequestSpec,
    Workload,
    azure_2023,
    build_workload,
    fit_published,
    fit_to_context,
)

TRACES = Path("/work/shared/data/traces")
CONV = TRACES / "azure_llm_2023_conv.csv"
CODE = TRACES / "azure_llm_2023_code.csv"
needs_traces = pytest.mark.skipif(not CONV.exists(), reason="shared Azure traces not on this machine")


# --- arrivals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "cv"), [(5.0, 1.0), (2.0, 0.5), (10.0, 3.0)])
def test_gamma_gaps_have_the_requested_rate_and_cv(rate: float, cv: float) -> None:
    gaps = gamma_gaps(rate, cv, 200_000, np.random.default_rng(1))
    # standard errors at n = 2e5 are < 1% of the mean for cv <= 3; allow 3%
    assert abs(1 / gaps.mean() - rate) / rate < 0.03
    assert abs(coefficient_of_variation(gaps) - cv) / cv < 0.03


def test_poisson_counts_in_unit_windows_have_variance_equal_to_mean() -> None:
    times = arrival_times(20.0, 100_000, cv=1.0, rng=np.random.default_rng(2))
    counts = np.bincount(times.astype(int))[:-1]  # drop the partial last window
    assert abs(counts.mean() - 20) < 0.3
    assert abs(counts.var() / counts.mean() - 1) < 0.1  # Poisson dispersion index 1


def test_arrival_times_start_at_zero_sorted_and_respect_duration() -> None:
    t = arrival_times(4.0, 1000, cv=2.0, duration=10.0, rng=np.random.default_rng(3))
    assert t[0] == 0 and np.all(np.diff(t) >= 0) and t[-1] < 10.0
    assert len(arrival_times(float("inf"), 7)) == 7 and not arrival_times(float("inf"), 7).any()


@pytest.mark.parametrize(("kwargs", "field"), [({"rate": 0}, "rate"), ({"rate": 1, "cv": -1}, "cv")])
def test_bad_arrival_parameters_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        arrival_times(num=5, rng=np.random.default_rng(0), **kwargs)


# --- trace reader ------------------------------------------------------------------------------------


@needs_traces
@pytest.mark.parametrize("path", [CONV, CODE])
def test_trace_reader_on_the_shared_azure_csvs_matches_numpy(path: Path) -> None:
    tr = read_trace(path)
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    assert len(tr) == len(raw)
    np.testing.assert_array_equal(tr.prompt_lens, raw[:, 1].astype(int))
    np.testing.assert_array_equal(tr.output_lens, raw[:, 2].astype(int))
    np.testing.assert_allclose(tr.arrival_times, raw[:, 0] - raw[0, 0])


@needs_traces
def test_conv_trace_has_the_published_statistics() -> None:
    tr = read_trace(CONV)
    assert len(tr) == 19_366
    assert round(tr.prompt_lens.mean()) == 1155 and round(tr.output_lens.mean()) == 211
    assert abs(tr.rate - 5.53) < 0.01
    assert abs(coefficient_of_variation(np.diff(tr.arrival_times)) - 1.09) < 0.01


def test_trace_reader_understands_the_original_azure_layout(tmp_path: Path) -> None:
    p = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    p.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:51.2224670,879,55\n"
    )
    tr = read_trace(p)
    np.testing.assert_allclose(tr.arrival_times, [0.0, 4.314579, 4.541877], atol=1e-6)
    assert tr.prompt_lens.tolist() == [374, 396, 879] and tr.output_lens.tolist() == [44, 109, 55]


def test_trace_reader_sorts_rows_by_arrival(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n2.0,5,6\n1.0,3,4\n")
    tr = read_trace(p)
    assert tr.arrival_times.tolist() == [0.0, 1.0] and tr.prompt_lens.tolist() == [3, 5]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("a,b,c\n1,2,3\n", "expected"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,x,3\n", "line 2"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,-1,3\n", "negative"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n", "no rows"),
    ],
)
def test_trace_reader_errors_name_the_problem(tmp_path: Path, content: str, match: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(ValueError, match=match):
        read_trace(p)
    with pytest.raises(ValueError, match="no such file"):
        read_trace(tmp_path / "missing.csv")


def test_a_binary_trace_is_refused_with_the_expected_columns(tmp_path: Path) -> None:
    p = tmp_path / "train.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(ValueError, match=r"trace: .*train.h5 is not a CSV text file; expected the columns"):
        read_trace(p)


# --- length distributions ----------------------------------------------------------------------------


def test_piecewise_log_quantile_mean_matches_numerical_integration() -> None:
    d = PiecewiseLogQuantile((0.0, 0.5, 0.9, 0.99, 1.0), (3.0, 100.0, 400.0, 900.0, 5000.0))
    u = (np.arange(2_000_000) + 0.5) / 2_000_000  # midpoint rule
    assert abs(d.quantile(u).mean() - d.mean()) / d.mean() < 1e-4


@pytest.mark.parametrize("service", ["conv", "code"])
def test_azure_fit_reproduces_the_published_quantiles(service: str) -> None:
    for dist, stats in zip(azure_2023(service), AZURE_2023_STATS[service].values(), strict=True):
        _, p50, p90, p99, maximum = stats
        np.testing.assert_allclose(dist.quantile(np.array([0.5, 0.9, 0.99, 1.0])), [p50, p90, p99, maximum])
        x = dist.sample(400_000, np.random.default_rng(4))
        for q, want in ((50, p50), (90, p90), (99, p99)):
            assert abs(np.percentile(x, q) - want) / want < 0.03


def test_azure_fit_matches_the_published_mean_where_the_knots_allow() -> None:
    conv_prompt, conv_output = azure_2023("conv")
    assert abs(conv_prompt.mean() - 1155) < 1 and abs(conv_output.mean() - 211) < 0.01
    code_prompt, code_output = azure_2023("code")
    assert abs(code_prompt.mean() - 2048) < 0.01
    # infeasible: the knots above p50 alone imply more than 28; the fit takes the smallest minimum
    assert code_output.values[0] == 1.0 and code_output.mean() > 28


def test_fit_published_solves_for_an_interior_minimum() -> None:
    target = PiecewiseLogQuantile((0.0, 0.5, 0.9, 0.99, 1.0), (40.0, 100.0, 300.0, 700.0, 2000.0))
    fit = fit_published(target.mean(), 100, 300, 700, 2000)
    assert abs(fit.values[0] - 40.0) < 1e-6


def test_pareto_has_the_requested_median_and_tail_index() -> None:
    x = Pareto(median=50, alpha=1.5).sample(400_000, np.random.default_rng(5)).astype(float)
    assert abs(np.median(x) - 50) <= 1
    # tail: P(X > 10 m) = (x_m / 10 m)^alpha with x_m = m / 2^(1/alpha)
    want = (1 / (10 * 2 ** (1 / 1.5))) ** 1.5
    assert abs((x > 500).mean() - want) / want < 0.05


def test_build_workload_from_a_trace_with_its_arrivals_scaled(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,4\n1,20,8\n3,30,12\n5,40,16\n")
    wl = build_workload(
        num_requests=3,
        rate=1.0,
        trace=read_trace(p),
        trace_arrivals=True,
        time_scale=2.0,
        length_scale=0.5,
        max_output_len=5,
    )
    assert [r.arrival_time for r in wl.requests] == [0.0, 0.5, 1.5]
    assert [r.prompt_len for r in wl.requests] == [5, 10, 15]
    assert [r.output_len for r in wl.requests] == [2, 4, 5]
    with pytest.raises(ValueError, match="^workload:"):
        build_workload(num_requests=3, rate=1.0, generator="zipfian")


# --- percentile math and the summary -----------------------------------------------------------------


def test_fit_to_context_clips_only_what_does_not_fit() -> None:
    # (prompt, output) -> after fitting to 100 tokens
    cases = {(30, 50): (30, 50), (60, 40): (60, 40),  # fit: unchanged
             (90, 30): (70, 30),  # the output fits beside a shorter prompt: the prompt gives way
             (20, 500): (20, 80),  # a short prompt keeps all of itself, the output the rest
             (5000, 900): (50, 50), (70, 70): (50, 50),  # both long: half each
             (5000, 1): (99, 1)}
    wl = Workload("w", tuple(RequestSpec(0.1 * i, p, o) for i, (p, o) in enumerate(cases)))
    fitted, num_clipped = fit_to_context(wl, 100)
    assert [(r.prompt_len, r.output_len) for r in fitted.requests] == list(cases.values())
    assert num_clipped == 5
    assert [r.arrival_time for r in fitted.requests] == [r.arrival_time for r in wl.requests]
    assert all(r.prompt_len + r.output_len <= 2 for r in fit_to_context(wl, 2)[0].requests)
    with pytest.raises(ValueError, match="max_model_len"):
        fit_to_context(wl, 1)


def test_percentile_equals_numpy_linear() -> None:
    rng = np.random.default_rng(6)
    for n in (1, 2, 3, 10, 101):
        xs = rng.exponential(size=n).tolist()
        for q in (0, 1, 50, 95, 99, 100):
            assert math.isclose(percentile(xs, q), float(np.percentile(xs, q)), rel_tol=1e-12)
    assert math.isnan(percentile([], 50))


def test_summarize_computes_the_defined_metrics() -> None:
    recs = [
        RequestRecord(10, 5, send_time=0.0, first_token_time=0.5, finish_time=1.5, num_output_tokens=5),
        RequestRecord(10, 3, send_time=1.0, first_token_time=1.2, finish_time=2.0, num_output_tokens=3),
        RequestRecord(10, 1, send_time=1.5, first_token_time=1.6, finish_time=1.6, num_output_tokens=1),
        RequestRecord(10, 4, send_time=2.0, error="HTTP 429"),
    ]
    r = summarize(recs)
    assert (r.num_requests, r.num_completed, r.num_failed) == (4, 3, 1)
    assert r.duration_s == 2.0 and r.request_throughput == 1.5 and r.output_throughput == 4.5
    ttfts, e2es = [0.5, 1.2 - 1.0, 1.6 - 1.5], [1.5, 1.0, 1.6 - 1.5]
    assert r.ttft_s == LatencyStats.of(ttfts)
    assert math.isclose(r.ttft_s.mean, np.mean(ttfts)) and math.isclose(r.e2e_s.p95, np.percentile(e2es, 95))
    # TPOT only for >= 2 tokens: (1.5-0.5)/4 and (2.0-1.2)/2
    assert math.isclose(r.tpot_s.mean, (0.25 + 0.4) / 2)
    assert math.isclose(r.s_per_output_token.mean, np.mean([1.5 / 5, 1.0 / 3, 0.1 / 1]))
    assert r.errors == ["HTTP 429"]
    assert "records" not in r.to_dict() and len(r.to_dict(with_records=True)["records"]) == 4
    empty = summarize([RequestRecord(1, 1, 0.0, error="x")], {"rate": float("inf")}).to_dict()
    assert empty["ttft_s"]["mean"] is None and empty["info"]["rate"] is None
    json.dumps(empty, allow_nan=False)
