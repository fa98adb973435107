"""ServerMetrics: engine gauges/counters read at scrape time, latency histograms from engine timestamps."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from foundry.serve import EngineStats, RequestOutput
from foundry.serve.metrics import ServerMetrics


def stats(**kw: float) -> EngineStats:
    base = dict(
        num_waiting=0,
        num_running=0,
        num_swapped=0,
        device_kv_usage=0.0,
        host_kv_usage=0.0,
        num_preemptions=0,
        num_swapped_out=0,
        num_swapped_in=0,
        num_steps=0,
        num_finished=0,
        num_aborted=0,
    )
    return EngineStats(**{**base, **kw})


def output(
    rid: str,
    n_out: int,
    finished: bool,
    arrival: float,
    first: float | None,
    finish: float | None,
    reason: str | None = None,
) -> RequestOutput:
    return RequestOutput(
        rid,
        [1, 2, 3],
        list(range(n_out)),
        [n_out - 1],
        "",
        "",
        None,
        finished,
        reason,
        arrival,
        first,
        finish,
    )


def samples(m: ServerMetrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_gauges_and_counters_follow_the_latest_engine_snapshot() -> None:
    current = {"s": stats()}
    m = ServerMetrics(lambda: current["s"])
    current["s"] = stats(
        num_waiting=3,
        num_running=2,
        num_swapped=1,
        device_kv_usage=0.25,
        host_kv_usage=0.5,
        num_preemptions=4,
        num_swapped_out=5,
        num_swapped_in=6,
        weight_version=7,
    )
    got = samples(m)
    assert got[("foundry_num_requests_waiting", ())] == 3
    assert got[("foundry_num_requests_running", ())] == 2
    assert got[("foundry_num_requests_swapped", ())] == 1
    assert got[("foundry_kv_cache_usage_ratio", ())] == 0.25
    assert got[("foundry_host_kv_cache_usage_ratio", ())] == 0.5
    assert got[("foundry_num_preemptions_total", ())] == 4
    assert got[("foundry_num_swapped_out_total", ())] == 5
    assert got[("foundry_num_swapped_in_total", ())] == 6
    assert got[("foundry_weight_version", ())] == 7


def test_latency_histograms_use_the_engines_timestamps() -> None:
    m = ServerMetrics(stats)
    m.on_step([output("a", 1, False, 10.0, 10.5, None)], stats())
    m.on_step(
        [output("a", 5, True, 10.0, 10.5, 11.7, "length"), output("b", 1, True, 20.0, 20.05, 20.05, "stop")],
        stats(),
    )
    got = samples(m)
    assert got[("foundry_time_to_first_token_seconds_count", ())] == 2
    assert abs(got[("foundry_time_to_first_token_seconds_sum", ())] - (0.5 + 0.05)) < 1e-9
    assert abs(got[("foundry_e2e_request_latency_seconds_sum", ())] - (1.7 + 0.05)) < 1e-9
    # TPOT only for requests with >= 2 tokens: (11.7 - 10.5) / 4
    assert got[("foundry_time_per_output_token_seconds_count", ())] == 1
    assert abs(got[("foundry_time_per_output_token_seconds_sum", ())] - 0.3) < 1e-9
    assert got[("foundry_requests_finished_total", (("finish_reason", "length"),))] == 1
    assert got[("foundry_requests_finished_total", (("finish_reason", "stop"),))] == 1
    assert got[("foundry_generation_tokens_total", ())] == 3  # one new token per output
    assert got[("foundry_prompt_tokens_total", ())] == 6
    # bucket counts are cumulative: the 0.05 s TTFT is counted from le=0.1 on, the 0.5 s one from le=0.5
    assert got[("foundry_time_to_first_token_seconds_bucket", (("le", "0.1"),))] == 1
    assert got[("foundry_time_to_first_token_seconds_bucket", (("le", "0.25"),))] == 1
    assert got[("foundry_time_to_first_token_seconds_bucket", (("le", "0.5"),))] == 2


def test_aborted_requests_are_counted_but_not_timed() -> None:
    m = ServerMetrics(stats)
    m.on_step([output("a", 2, True, 1.0, 1.2, None, "abort")], stats())
    got = samples(m)
    assert got[("foundry_requests_finished_total", (("finish_reason", "abort"),))] == 1
    assert got[("foundry_e2e_request_latency_seconds_count", ())] == 0


def test_two_servers_do_not_share_series() -> None:
    a, b = ServerMetrics(stats), ServerMetrics(stats)
    a.rejected.inc()
    assert samples(a)[("foundry_requests_rejected_total", ())] == 1
    assert samples(b)[("foundry_requests_rejected_total", ())] == 0
