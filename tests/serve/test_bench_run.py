"""The load generator end to end: a few requests in-process and over HTTP (seconds, not a benchmark)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from foundry.serve import EngineConfig, LLMEngine
from foundry.serve.bench import HttpTarget, InProcessTarget, build_workload, run_benchmark
from foundry.serve.bench.trace import read_trace
from foundry.serve.server import create_app, serve_in_thread
from tests.waiting import StepGate, wait_until

CONFIG = EngineConfig(max_num_seqs=4, max_model_len=128, num_device_blocks=64)


def check_complete(result, workload) -> None:
    assert result.num_completed == result.num_requests == len(workload) and result.num_failed == 0
    for rec, spec in zip(result.records, workload.requests, strict=True):
        assert rec.num_output_tokens == spec.output_len == rec.target_output_len  # ignore_eos honoured
        assert rec.send_time >= spec.arrival_time  # open loop: never sent early
        assert rec.send_time <= rec.first_token_time <= rec.finish_time
    assert result.total_output_tokens == sum(s.output_len for s in workload.requests)
    assert result.ttft_s.p50 <= result.e2e_s.p50 and result.request_throughput > 0


def test_in_process_run_with_heavy_tailed_lengths() -> None:
    wl = build_workload(
        num_requests=8,
        rate=40.0,
        cv=2.0,
        generator="pareto",
        prompt_len=12,
        output_len=4,
        max_output_len=24,
        seed=1,
    )
    target = InProcessTarget(LLMEngine(CONFIG))
    result = run_benchmark(wl, target, info={"note": "test"})
    check_complete(result, wl)
    assert result.info["note"] == "test" and result.info["target"].startswith("in-process")
    again = run_benchmark(wl, target)  # sweeps reuse one engine across runs
    check_complete(again, wl)
    assert not target.engine.has_unfinished_requests()


def test_http_run_against_the_server() -> None:
    wl = build_workload(
        num_requests=6,
        rate=30.0,
        generator="lognormal",
        prompt_len=10,
        output_len=5,
        max_prompt_len=64,
        max_output_len=20,
        seed=2,
    )
    app = create_app(LLMEngine(CONFIG))
    with serve_in_thread(app) as url:
        result = run_benchmark(wl, HttpTarget(url))
    check_complete(result, wl)


def test_http_run_records_refusals_as_failures() -> None:
    wl = build_workload(num_requests=6, rate=float("inf"), prompt_len=8, output_len=30)
    llm = LLMEngine(EngineConfig(max_num_seqs=1, max_model_len=128, num_device_blocks=64))
    app = create_app(llm, max_waiting=1)
    registry = app.state.metrics.registry
    with serve_in_thread(app) as url, StepGate(llm) as gate, ThreadPoolExecutor(1) as pool:
        # the engine stands still: the first request waits in it, so each of the other five finds the
        # waiting queue full; then the first is let through
        run = pool.submit(run_benchmark, wl, HttpTarget(url))
        assert wait_until(lambda: registry.get_sample_value("foundry_requests_rejected_total") == 5)
        gate.open()
        result = run.result()
    assert (result.num_failed, result.num_completed) == (5, 1)
    assert all(e.startswith("HTTP 429") for e in result.errors)


TRACES = Path("/work/shared/data/traces")


@pytest.mark.skipif(not (TRACES / "azure_llm_2023_conv.csv").exists(), reason="shared traces absent")
def test_in_process_replay_of_the_azure_conv_trace_scaled_down() -> None:
    trace = read_trace(TRACES / "azure_llm_2023_conv.csv")
    wl = build_workload(
        num_requests=6,
        rate=1.0,
        trace=trace,
        trace_arrivals=True,
        time_scale=20.0,
        length_scale=0.02,
        max_prompt_len=64,
        max_output_len=16,
    )
    assert [s.arrival_time for s in wl.requests] == pytest.approx(trace.arrival_times[:6] / 20.0)
    check_complete(run_benchmark(wl, InProcessTarget(LLMEngine(CONFIG))), wl)
