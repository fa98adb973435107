"""The same trace through the real engine (foundry-tiny on CPU) and through the simulator, with the
engine's own step times replayed as the cost model: the schedules must be identical, step by step."""

import math

import pytest

pytest.importorskip("torch")

from foundry.serve import EngineConfig, LLMEngine  # noqa: E402
from foundry.serve.bench.workloads import build_workload  # noqa: E402
from foundry.sim import simulate  # noqa: E402
from foundry.sim.calibrate import run_engine  # noqa: E402
from foundry.sim.cost_models import LinearCostModel, ReplayCostModel  # noqa: E402
from foundry.sim.deployment import Deployment  # noqa: E402

CASES = {
    "fcfs": {},
    "vllm": {"preemption_mode": "swap"},
    "mlfq": {"mlfq_base_quantum_s": 0.001, "mlfq_memory_mode": "proactive-swap"},
    "srpt": {"mlfq_memory_mode": "recompute"},
}


@pytest.mark.parametrize("policy", sorted(CASES))
def test_replayed_step_times_give_the_engines_schedule(policy):
    opts = CASES[policy]
    config = EngineConfig(policy=policy, num_device_blocks=16, num_host_blocks=40, block_size=8,
                          max_num_seqs=4, max_num_batched_tokens=64, max_model_len=256, **opts)
    w = build_workload(num_requests=10, rate=math.inf, generator="lognormal", prompt_len=20, output_len=12,
                       max_prompt_len=60, max_output_len=30, seed=1)
    run = run_engine(LLMEngine(config), w)
    assert all(r.ok for r in run.records)
    dep = Deployment(ReplayCostModel(run.recording.update_elapsed), 8, 16, 40, 0.0, math.inf)
    res = simulate(w, dep, policy, max_num_seqs=4, max_num_batched_tokens=64, max_model_len=256,
                   record_schedule=True, check_invariants=True, policy_options=opts)
    assert res.schedule == run.recording.steps
    assert [r.num_output_tokens for r in res.records] == [r.num_output_tokens for r in run.records]
    if policy in ("vllm", "mlfq"):
        assert res.stats.num_preemptions > 0  # the pool is small enough to exercise preemption


def test_calibration_samples_fit_the_engine():
    config = EngineConfig(policy="vllm", max_num_seqs=8, max_num_batched_tokens=256)
    w = build_workload(num_requests=24, rate=math.inf, generator="lognormal", prompt_len=64, output_len=16,
                       max_prompt_len=200, max_output_len=40, seed=0)
    run = run_engine(LLMEngine(config), w)
    assert len(run.samples) == len(run.step_times) > 20
    model, report = LinearCostModel.fit(run.samples)
    assert model.prefill_time(128) > model.prefill_time(8) > 0
    # per-step error is wall-clock noise on a shared CPU (the benchmark reports it); the absolute fit
    # keeps the total time, which is what queueing depends on
    assert report.total_ratio == pytest.approx(1.0, abs=0.05)
