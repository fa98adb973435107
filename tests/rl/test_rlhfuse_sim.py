"""The paper-scale RLHFuse iteration: closed forms of its costs, the pipeline layout, the limits of fusion."""

import numpy as np
import pytest

from foundry.rl.fused import seq_1f1b_makespan
from foundry.rl.rlhfuse_sim import (
    LLAMA,
    RLHFuseSimConfig,
    discretise,
    draw_lengths,
    infer_s_per_token,
    num_instances,
    pipelines,
    simulate_iteration,
    simulator_check,
    stage_forward_s,
    threshold_sweep,
)
from foundry.sim.hardware import gpu_spec

FAST = {"search_iters": 2000}


def test_batch_is_heavy_tailed_and_capped():
    cfg = RLHFuseSimConfig()
    x = draw_lengths(cfg, 0)
    assert len(x) == 512 and x.max() <= 2048 and x.min() >= 1
    assert np.quantile(x, 0.999) / np.median(x) >= 10  # reference §3.1/§6


def test_cost_closed_forms():
    cfg = RLHFuseSimConfig(actor="llama-65b", critic="llama-33b")
    peak = gpu_spec("h800").peak_flops
    assert num_instances(cfg) == 256 // 8
    want = 2 * (2 * 65.2e9 + 2 * 32.5e9) / (8 * peak * 0.4)  # actor, ref, critic, reward forwards of a token
    assert infer_s_per_token(cfg) == pytest.approx(want)
    want = 2 * 65.2e9 / 8 * 500 / (8 * peak * 0.4)  # a stage of 1/8 of the model, 500 tokens, TP 8
    assert stage_forward_s(cfg, "llama-65b", 8, 500.0) == pytest.approx(want)
    assert discretise(10.0, 3.1, 5) == (5, 2) and discretise(10.0, 0.1, 5) == (5, 1)


@pytest.mark.parametrize(("actor", "critic", "shape", "large"), [
    ("llama-65b", "llama-33b", (8, 4, 16, 8), "actor"),  # DP 4: 16 samples per DP group, 2 critic replicas
    ("llama-33b", "llama-13b", (4, 2, 8, 4), "actor"),
    ("llama-13b", "llama-33b", (4, 2, 8, 4), "critic"),  # the larger model is model 0
    ("llama-33b", "llama-33b", (4, 4, 8, 8), "actor"),
])
def test_pipeline_layout(actor, critic, shape, large):
    p = pipelines(RLHFuseSimConfig(actor=actor, critic=critic, **FAST), 500.0)
    fc = p.fused_cfg
    assert (fc.pp0, fc.pp1, fc.m0, fc.m1) == shape and p.large == large
    assert p.lower_bound_units <= p.fused_units <= p.seq_units == seq_1f1b_makespan(fc)
    assert p.fused_s == pytest.approx(p.seq_s * p.fused_units / p.seq_units)


def test_seq_seconds_match_units_when_the_ratio_is_exact():
    # equal models: f0 = f1, so the integer model is exact and seconds = units x (f0 / f_units)
    p = pipelines(RLHFuseSimConfig(actor="llama-33b", critic="llama-33b", **FAST), 400.0)
    assert p.fused_cfg.f0 == p.fused_cfg.f1 == 5
    assert p.seq_s == pytest.approx(p.seq_units * p.f_s[0] / 5)


def test_bad_layout_is_rejected():
    with pytest.raises(ValueError, match="mini_batch"):
        pipelines(RLHFuseSimConfig(mini_batch=4, **FAST), 500.0)
    with pytest.raises(ValueError, match="train_pp"):
        pipelines(RLHFuseSimConfig(train_pp=(8, 3), **FAST), 500.0)


def test_iteration_threshold_zero_and_uniform_lengths_gain_nothing_in_gen_infer():
    r = simulate_iteration(RLHFuseSimConfig(threshold=0.0, max_gen=512, **FAST))
    assert r.speedups()["gen_infer_x"] == 1.0
    assert r.speedups()["train_x"] == pytest.approx(r.pipelines.seq_units / r.pipelines.fused_units)
    # every sample the same length (16 per instance, all in one batch): nothing to overlap
    u = simulate_iteration(RLHFuseSimConfig(sigma=0.0, max_gen=512, **FAST))
    assert u.threshold == 0.0 and u.speedups()["gen_infer_x"] == 1.0


def test_iteration_fusion_gains_with_the_chosen_threshold():
    r = simulate_iteration(RLHFuseSimConfig(max_gen=512, **FAST))
    s = r.speedups()
    assert s["gen_infer_x"] >= 1.0 and s["train_x"] >= 1.0
    assert r.base_s == pytest.approx(r.base_gen_infer_s + r.base_train_s)
    # fusion only hides inference (the tail's decoding is not shortened here): at best (G + I) / G
    assert r.base_gen_infer_s / r.fused_gen_infer_s <= 1 / (1 - r.extra["infer_share_of_base"]) + 1e-9


def test_sweep_starts_at_base_and_simulator_agrees_with_latency_model():
    cfg = RLHFuseSimConfig(max_gen=512, **FAST)
    rows = threshold_sweep(cfg, (0.0, 0.2))
    assert rows[0]["total_s"] == pytest.approx(simulate_iteration(cfg.model_copy(
        update={"threshold": 0.0})).base_gen_infer_s)
    assert rows[1]["survivors"] < 0.2 * 512 and rows[1]["kept_instances"] < num_instances(cfg)
    chk = simulator_check(cfg)
    assert chk["simulator_gen_s"] == pytest.approx(chk["latency_model_gen_s"], rel=0.1)
    assert set(LLAMA) == {"llama-13b", "llama-33b", "llama-65b"}
