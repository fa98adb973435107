import json
import random

import pytest

from foundry.serve.elastic.cost_model import (
    DecodeCoeffs,
    ESPCostModel,
    PrefillCoeffs,
    PrefillSample,
    fit_prefill,
)

TRUE = {1: PrefillCoeffs(0.012, 6.5e-5, 4.0e-10), 2: PrefillCoeffs(0.02, 3.4e-5, 2.1e-10),
        4: PrefillCoeffs(0.035, 1.8e-5, 1.1e-10)}


def _grid(noise: float, seed: int = 0) -> list[PrefillSample]:
    """LoongServe's profiling grid (batch × input length, serving.md §3.3), trimmed."""
    rng = random.Random(seed)
    out = []
    for k, c in TRUE.items():
        for batch in (1, 2, 4, 16, 64):
            for length in (10, 100, 1000, 5000, 20000, 100000):
                if batch * length > 500_000:
                    continue
                t = c.time(batch * length, batch * length**2) * (1 + rng.uniform(-noise, noise))
                out.append(PrefillSample(k, batch * length, batch * length**2, t))
    return out


def test_fit_recovers_exact_coefficients():
    fit = fit_prefill(_grid(noise=0.0))
    assert set(fit.coeffs) == {1, 2, 4}
    for k, c in TRUE.items():
        got = fit.coeffs[k]
        assert got.a == pytest.approx(c.a, rel=1e-6)
        assert got.b == pytest.approx(c.b, rel=1e-6)
        assert got.c == pytest.approx(c.c, rel=1e-6)
        assert fit.report[k].max_rel_err < 1e-8


def test_fit_with_noise_predicts_within_the_noise():
    fit = fit_prefill(_grid(noise=0.05, seed=3))
    for k, c in TRUE.items():
        assert fit.report[k].mean_rel_err < 0.05 and fit.report[k].max_rel_err < 0.12
        for sum_len, sum_sq in ((1000, 10**6), (64 * 5000, 64 * 5000**2), (100000, 10**10)):
            assert fit.coeffs[k].time(sum_len, sum_sq) == pytest.approx(c.time(sum_len, sum_sq), rel=0.06)


def test_sample_of_lengths():
    s = PrefillSample.of(2, [3, 4], 0.5)
    assert (s.sum_len, s.sum_sq) == (7, 25)


@pytest.mark.parametrize("bad, match", [
    ([PrefillSample(1, 10, 100, -1.0)], "positive"),
    ([PrefillSample(1, 10, 100, 0.0)], "positive"),
    ([PrefillSample(1, 10, 100, float("nan"))], "positive"),
    ([PrefillSample(1, -10, 100, 1.0)], "non-negative"),
    ([], "no samples"),
    ([PrefillSample(1, 10, 100, 1.0), PrefillSample(1, 20, 400, 2.0)], "cannot determine"),
    ([PrefillSample(1, 10, 100, 1.0)] * 5, "cannot determine"),
])
def test_fit_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        fit_prefill(bad)


def test_fit_requires_samples_for_every_named_degree():
    with pytest.raises(ValueError, match="no samples for SP degree 3"):
        fit_prefill(_grid(noise=0.0), degrees=(1, 2, 3))


def test_times_and_json_round_trip():
    m = ESPCostModel(prefill=TRUE, decode=DecodeCoeffs(0.01, 1e-7, 1e-5), kv_bytes_per_token=2**19,
                     bandwidth=2**30)
    assert m.prefill_time_of(2, [100, 200]) == pytest.approx(TRUE[2].time(300, 50000))
    assert m.decode_time(4, 1000) == pytest.approx(0.01 + 1e-4 + 4e-5)
    assert m.migration_time(2048) == pytest.approx(1.0)
    assert m.degrees == (1, 2, 4)
    with pytest.raises(ValueError, match="no prefill model for SP degree 3"):
        m.prefill_time(3, 1, 1)
    back = ESPCostModel.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m


def test_model_rejects_bad_construction():
    with pytest.raises(ValueError):
        ESPCostModel(prefill={})
    with pytest.raises(ValueError):
        ESPCostModel(prefill={0: PrefillCoeffs(0, 0, 0)})
