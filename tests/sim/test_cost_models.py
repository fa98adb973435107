"""Cost models: the fit recovers known coefficients, the published table matches the reference's
T_pre values, the roofline lands near DistServe's measured fit, files round-trip."""

import json

import numpy as np
import pytest

from foundry.serve.profile import Profile
from foundry.sim.batch import BatchFeatures, batch_features, decode_features, prefill_features
from foundry.sim.cost_models import (
    LinearCostModel,
    ReplayCostModel,
    RooflineCostModel,
    load_fitted,
    published_cost_model,
)
from foundry.sim.hardware import gpu_spec, model_spec, num_kv_blocks


def _random_batches(rng, n):
    out = []
    for _ in range(n):
        kind = rng.integers(3)
        nd = int(rng.integers(0, 17)) if kind != 0 else 0
        sd = int(sum(rng.integers(1, 2000, size=nd))) if nd else 0
        if kind == 1 or nd == 0:
            lens = rng.integers(1, 1500, size=int(rng.integers(1, 5)))
            ctx = rng.integers(0, 300, size=len(lens)) * (rng.random(len(lens)) < 0.3)
            f = BatchFeatures(len(lens), int(lens.sum()), int((lens * lens + 2 * lens * ctx).sum()), nd, sd)
        else:
            f = BatchFeatures(0, 0, 0, nd, sd)
        out.append(f)
    return out


def test_fit_recovers_synthetic_coefficients():
    truth = LinearCostModel((0.012, 8e-5, 4e-9), (0.015, 3e-6, 2e-4))
    rng = np.random.default_rng(0)
    feats = _random_batches(rng, 400)
    samples = [(f, truth.predict(f) * (1 + 0.002 * rng.standard_normal())) for f in feats]
    for weighting in ("absolute", "relative"):
        fit, report = LinearCostModel.fit(samples, weighting=weighting)
        for got, want in zip(fit.prefill + fit.decode, truth.prefill + truth.decode, strict=True):
            assert got == pytest.approx(want, rel=0.05)
        assert report.mean_rel_error < 0.005 and report.num_samples == 400
        assert report.total_ratio == pytest.approx(1.0, abs=0.005)
    with pytest.raises(ValueError, match="weighting"):
        LinearCostModel.fit(samples, weighting="median")
    assert "mean |rel. error|" in str(report)


def test_fit_runs_takes_the_median_runs_level_so_one_slow_run_does_not_move_it():
    truth = LinearCostModel((0.012, 8e-5, 4e-9), (0.015, 3e-6, 2e-4))
    rng = np.random.default_rng(1)
    speeds = [1.0, 1.04, 0.97, 1.6]  # three runs near the true speed, one while the machine was 1.6x slower
    runs = [[(f, s * truth.predict(f) * (1 + 0.01 * rng.standard_normal()))
             for f in _random_batches(rng, 150)] for s in speeds]
    test = _random_batches(rng, 300)
    true_total = sum(truth.predict(f) for f in test)
    robust, report, ratios = LinearCostModel.fit_runs(runs)
    pooled, _ = LinearCostModel.fit([x for run in runs for x in run])
    assert sum(robust.predict(f) for f in test) / true_total == pytest.approx(1.02, abs=0.03)
    assert sum(pooled.predict(f) for f in test) / true_total > 1.1  # the slow run pulls a pooled fit
    assert ratios[3] > 1.2 > ratios[0] and report.num_samples == 600
    one = LinearCostModel.fit_runs(runs[:1])[0]  # one run: its own fit, unscaled
    assert one.prefill == pytest.approx(LinearCostModel.fit(runs[0])[0].prefill)
    with pytest.raises(ValueError, match="runs"):
        LinearCostModel.fit_runs([])
    with pytest.raises(ValueError, match="factor"):
        truth.scaled(0.0)


def test_fit_refuses_too_few_samples():
    with pytest.raises(ValueError, match="samples"):
        LinearCostModel.fit([(prefill_features(10), 0.01)] * 3)


def test_published_opt13b_matches_the_reference_prefill_table():
    # serving reference §2.5: T_pre (ms) from DistServe's OPT-13B / A100 fit
    table = {32: 19.43, 128: 28.42, 256: 40.60, 512: 65.59, 1024: 118.12, 2048: 233.36, 4096: 504.57}
    m = published_cost_model("opt-13b-a100")
    for n, ms in table.items():
        assert m.prefill_time(n) * 1e3 == pytest.approx(ms, abs=0.01)
    # decode: the small-batch row below 95, the large-batch row from 95 up
    assert m.decode_time(1, 512) * 1e3 == pytest.approx(19.934703 + 6.269357e-4 * 512 + 0.0385070)
    want = 7.166189 + 5.798e-4 * 51200 + 0.158311 * 100
    assert m.decode_time(100, 512) * 1e3 == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="opt-13b-a100"):
        published_cost_model("gpt-2-a100")


def test_mixed_step_adds_decodes_to_the_prefill_formula():
    m = LinearCostModel((1.0, 0.1, 0.01), (2.0, 0.5, 0.25))
    f = BatchFeatures(1, 10, 100, 3, 30)
    assert m.predict(f) == pytest.approx(1.0 + 0.1 * 10 + 0.01 * 100 + 0.5 * 30 + 0.25 * 3)
    assert m.predict(BatchFeatures()) == 0.0


def test_roofline_is_within_2x_of_distserves_measured_opt13b_fit():
    roof = RooflineCostModel(gpu_spec("a100"), model_spec("opt-13b"))
    pub = published_cost_model("opt-13b-a100")
    for n in (128, 512, 1024, 2048, 4096):
        assert 0.5 < roof.prefill_time(n) / pub.prefill_time(n) < 2.0, n
    for b in (1, 8, 32, 64):
        assert 0.5 < roof.decode_time(b, 512) / pub.decode_time(b, 512) < 2.0, b
    # the regimes: long prefill is compute bound (grows ~linearly), batch-1 decode is weight-read bound
    assert roof.prefill_time(4096) > 3 * roof.prefill_time(1024)
    assert roof.decode_time(8, 512) < 1.2 * roof.decode_time(1, 512)


def test_gqa_shrinks_kv_and_the_pool_is_sized_from_memory():
    assert model_spec("opt-13b").kv_bytes_per_token == 2 * 40 * 5120 * 2  # 0.78 MiB, reference §4
    assert model_spec("llama-3-8b").kv_bytes_per_token == 128 * 1024
    blocks = num_kv_blocks(gpu_spec("a100"), model_spec("opt-13b"), 16)
    assert 55_000 < blocks * 16 < 60_000  # ≈ 46 GB of KV ≈ 58k tokens (reference §4)
    with pytest.raises(ValueError, match="does not fit"):
        num_kv_blocks(gpu_spec("a10g"), model_spec("opt-13b"), 16)
    with pytest.raises(ValueError, match="gpu"):
        gpu_spec("tpu")


def test_batch_features_split_prefill_chunk_and_decode():
    from foundry.serve.policies.base import ScheduledRequest, SchedulerOutput
    from foundry.serve.sampling_params import SamplingParams
    from foundry.serve.sequence import Sequence

    fresh = Sequence("a", [0] * 10, SamplingParams(max_tokens=4), 0.0)
    chunk = Sequence("b", [0] * 10, SamplingParams(max_tokens=4), 0.0)
    chunk.num_computed_tokens = 6
    dec = Sequence("c", [0] * 10, SamplingParams(max_tokens=4), 0.0, output_token_ids=[1])
    dec.num_computed_tokens = 10
    d = SchedulerOutput([ScheduledRequest(fresh, 10), ScheduledRequest(chunk, 4), ScheduledRequest(dec, 1)])
    assert batch_features(d) == BatchFeatures(2, 14, 100 + 16 + 2 * 4 * 6, 1, 11)
    assert decode_features(4, 100) == BatchFeatures(0, 0, 0, 4, 400)


def test_fitted_files_round_trip(tmp_path):
    from foundry.sim.cost_models.fitted import samples_to_json

    m = published_cost_model("opt-13b-a100")
    path = tmp_path / "m.json"
    m.save(path)
    back, report = load_fitted(path)
    assert report is None and back.predict(decode_features(120, 300)) == m.predict(decode_features(120, 300))
    feats = _random_batches(np.random.default_rng(1), 50)
    (tmp_path / "s.json").write_text(json.dumps(samples_to_json([(f, m.predict(f)) for f in feats], {})))
    fit, report = load_fitted(tmp_path / "s.json")
    assert report is not None and report.num_samples == 50
    prof = Profile([16, 64, 256], [0.002, 0.004, 0.011], [1, 2, 4, 8], [0.003, 0.0032, 0.0036, 0.0044],
                   {"decode_context": 64})
    prof.save(tmp_path / "p.json")
    fit, report = load_fitted(tmp_path / "p.json")
    assert fit.prefill_time(64) == pytest.approx(0.004, rel=0.1) and report.mean_rel_error < 0.1
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="neither"):
        load_fitted(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="no such file"):
        load_fitted(tmp_path / "missing.json")


def test_replay_returns_times_in_order_then_refuses():
    r = ReplayCostModel([0.1, 0.2])
    assert [r.predict(BatchFeatures()), r.predict(BatchFeatures())] == [0.1, 0.2]
    with pytest.raises(RuntimeError, match="replay"):
        r.predict(BatchFeatures())
