"""FastServe's policies on the real engine: same greedy tokens under any preemption/swap pattern, no
block leak, `/metrics` shows the MLFQ series, the CLI runs `sj-mlfq` (measuring a profile if none given)."""

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from foundry.serve import EngineConfig, LLMEngine, SamplingParams
from foundry.serve.policies import MLFQPolicy, SRPTOraclePolicy
from foundry.serve.profile import Profile

PROMPTS = [[40 + (7 * i + j) % 80 for j in range(n)] for i, n in enumerate([5, 41, 12, 30, 3, 22, 17, 9])]
MAX_TOKENS = [12, 6, 20, 9, 15, 4, 11, 18]
# a synthetic "measured" profile: long prompts skip-join deep levels
PROFILE = Profile([1, 64], [1e-5, 4e-4])


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True)


@pytest.fixture(scope="module")
def reference(tiny_ckpt):
    engine = LLMEngine(EngineConfig(model=tiny_ckpt, policy="fcfs", num_device_blocks=256))
    return [o.output_token_ids for o in engine.generate(PROMPTS, [greedy(n) for n in MAX_TOKENS])]


POLICIES = {
    "mlfq/proactive-swap": lambda: MLFQPolicy(3, 32, base_quantum=1e-5, memory_mode="proactive-swap",
                                              starvation_interval=4, starvation_threshold_s=0.0),
    "sj-mlfq/reactive-swap": lambda: MLFQPolicy(3, 32, base_quantum=1e-5, skip_join=True,
                                                prefill_time=PROFILE.prefill_time,
                                                memory_mode="reactive-swap"),
    "sj-mlfq/recompute": lambda: MLFQPolicy(3, 32, base_quantum=1e-5, skip_join=True,
                                            prefill_time=PROFILE.prefill_time, memory_mode="recompute"),
    "sj-mlfq/proactive-small-host": lambda: MLFQPolicy(4, 48, base_quantum=1e-5, skip_join=True,
                                                       prefill_time=PROFILE.prefill_time, min_free_blocks=6),
    "srpt/proactive-swap": lambda: SRPTOraclePolicy(3, 32),
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_greedy_outputs_unchanged_by_preemption_and_swaps_and_no_block_leak(name, tiny_ckpt, reference):
    host = 4 if "small-host" in name else 64
    cfg = EngineConfig(model=tiny_ckpt, block_size=4, num_device_blocks=18, num_host_blocks=host,
                       max_num_seqs=4, max_num_batched_tokens=48)
    engine = LLMEngine(cfg, policy=POLICIES[name](), check_invariants=True)  # after every step
    outs = engine.generate(PROMPTS, [greedy(n) for n in MAX_TOKENS])
    assert [o.output_token_ids for o in outs] == reference
    s = engine.stats()
    assert s.num_preemptions > 0, "the test must actually preempt"
    if "swap" in name:
        assert s.num_swapped_out > 0 and s.num_swapped_in > 0
    assert engine.block_manager.num_free_device_blocks == 18 and not engine.block_manager.tables
    assert engine.block_manager.num_free_host_blocks == host and engine.policy.queued() == []


def test_metrics_show_queue_levels_demotions_and_swaps_over_http(tiny_ckpt):
    from foundry.serve.server import create_app, serve_in_thread

    cfg = EngineConfig(model=tiny_ckpt, block_size=4, num_device_blocks=24, num_host_blocks=64,
                       max_num_seqs=2)
    engine = LLMEngine(cfg, policy=MLFQPolicy(2, 64, base_quantum=1e-5, skip_join=True,
                                              prefill_time=PROFILE.prefill_time))
    with serve_in_thread(create_app(engine)) as url:
        body = {"model": engine.model_name, "prompt": PROMPTS[:4], "max_tokens": 8, "temperature": 0,
                "ignore_eos": True}
        r = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 32
        text = httpx.get(f"{url}/metrics").text
    got = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    levels = {k[1][0][1]: v for k, v in got.items() if k[0] == "foundry_mlfq_queue_requests"}
    assert levels and all(v == 0 for v in levels.values())  # all finished; levels were created on demand
    assert len(levels) > 1
    assert got[("foundry_mlfq_demotions_total", ())] > 0
    assert ("foundry_num_swapped_out_total", ()) in got
    assert ("foundry_mlfq_starvation_promotions_total", ()) in got


def test_cli_bench_runs_sj_mlfq_measuring_a_profile_when_none_is_given(tiny_ckpt):
    from foundry.cli import app

    args = ["serve", "bench", "--in-process", "--model", tiny_ckpt, "--policy", "sj-mlfq",
            "--mlfq-base-quantum", "auto", "--mlfq-memory-mode", "reactive-swap",
            "--num-requests", "3", "--rate", "50",
            "--prompt-len", "8", "--output-len", "4", "--json"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["num_completed"] == 3
    bad = CliRunner().invoke(app, env={"COLUMNS": "200"}, args=[*args[:7], "--mlfq-base-quantum", "soon"])
    assert bad.exit_code != 0 and "--mlfq-base-quantum" in bad.output
    bad = CliRunner().invoke(app, env={"COLUMNS": "200"}, args=[*args[:7], "--mlfq-memory-mode", "keep"])
    assert bad.exit_code != 0 and "--mlfq-memory-mode" in bad.output
    bad = CliRunner().invoke(app, env={"COLUMNS": "200"}, args=[*args[:7], "--profile", "/nonexistent.json"])
    assert bad.exit_code != 0 and "--profile" in bad.output


def test_starvation_hold_is_an_engine_option(tiny_ckpt):
    """The hold rule reaches the policy from EngineConfig and the CLI; a bad value names its option."""
    from foundry.serve.cli import app
    from foundry.serve.policies import build_policy

    for hold in ("quantum", "finish", "off"):
        config = EngineConfig(model=str(tiny_ckpt), policy="mlfq", mlfq_starvation_hold=hold)
        policy = build_policy(config.scheduler)
        assert isinstance(policy, MLFQPolicy) and policy.starvation_hold == hold
    with pytest.raises(ValueError, match="mlfq.starvation_hold"):
        EngineConfig(model=str(tiny_ckpt), policy="mlfq", mlfq_starvation_hold="forever")
    result = CliRunner().invoke(
        app, ["bench", "--in-process", "--model", str(tiny_ckpt), "--mlfq-starvation-hold", "forever"]
    )
    assert result.exit_code != 0 and "mlfq-starvation-hold" in result.output
