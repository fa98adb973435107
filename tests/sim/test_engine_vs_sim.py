"""The same trace through the real engine (foundry-tiny on CPU) and through the simulator, with the
engine's own step times replayed as the cost model: the schedules must be identical, step by step."""

import itertools
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
    "mlfq": {"mlfq_base_quantum": 0.001, "mlfq_memory_mode": "proactive-swap"},
    "srpt": {"mlfq_memory_mode": "recompute"},
}


@pytest.mark.parametrize("policy", sorted(CASES))
def test_replayed_step_times_give_the_engines_schedule(policy):
    opts = CASES[policy]
    config = EngineConfig(policy=policy, num_device_blocks=16, num_host_blocks=40, block_size=8,
                          max_num_seqs=4, max_num_batched_tokens=64, max_model_len=256, **opts)
    w = build_workload(num_requests=10, rate=math.inf, generator="lognormal", prompt_len=20, output_len=12,
                       max_prompt_len=60, max_output_len=30, seed=1)
    # a virtual clock (0.1 ms a reading) makes the engine's schedule, quanta included, the same on any machine
    ticks = itertools.count()
    run = run_engine(LLMEngine(config, clock=lambda: next(ticks) * 1e-4), w)
    assert all(r.ok for r in run.records)
    dep = Deployment(ReplayCostModel(run.recording.update_elapsed), 8, 16, 40, 0.0, math.inf)
    res = simulate(w, dep, policy, max_num_seqs=4, max_num_batched_tokens=64, max_model_len=256,
                   record_schedule=True, check_invariants=True, **opts)
    assert res.schedule == run.recording.steps
    assert [r.num_output_tokens for r in res.records] == [r.num_output_tokens for r in run.records]
    if policy in ("vllm", "mlfq"):
        assert res.stats.num_preemptions > 0  # the pool is small enough to exercise preemption


def test_calibration_samples_are_the_engines_steps_and_fit_deterministically():
    config = EngineConfig(policy="vllm", max_num_seqs=8, max_num_batched_tokens=256)
    w = build_workload(num_requests=24, rate=math.inf, generator="lognormal", prompt_len=64, output_len=16,
                       max_prompt_len=200, max_output_len=40, seed=0)
    run = run_engine(LLMEngine(config), w)
    feats = [f for f, _ in run.samples]
    assert len(run.samples) == len(run.step_times) == len(run.recording.steps) > 20
    assert all(t > 0 for t in run.step_times)
    # the features are the engine's steps: each prompt token prefilled once, each later token decoded once
    assert sum(f.sum_prefill_tokens for f in feats) == sum(r.prompt_len for r in w.requests)
    assert sum(f.num_decode_seqs for f in feats) == sum(r.output_len - 1 for r in w.requests)
    # the fit on recorded steps is exact arithmetic: times from a known model give that model back.
    # How well such a model predicts this CPU's wall clock is a measurement: benchmarks/sim/fidelity.py.
    truth = LinearCostModel((2e-3, 4e-5, 1e-8), (3e-3, 2e-7, 1e-4))
    model, report = LinearCostModel.fit([(f, truth.predict(f)) for f in feats])
    assert report.total_ratio == pytest.approx(1.0, abs=1e-6) and report.mean_rel_error < 1e-6
    assert model.prefill_time(128) > model.prefill_time(8) > 0
    assert model.prefill_time(128) == pytest.approx(truth.prefill_time(128), rel=1e-4)
