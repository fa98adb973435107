"""The LWM-7B/A800 step models match LoongServe's published points within stated tolerances; derived
layouts keep the intercepts and scale the per-token terms; the elastic cost model is built from them."""

import pytest

from foundry.sim.elastic.calibration import (
    KV_BYTES_PER_TOKEN,
    LWM7BA800,
    PUBLISHED_MS,
    esp_cost_model,
    fit_table,
    kv_seconds_per_token,
)

PREFILL_TOL, DECODE_TOL, DECODE_MEAN_TOL = 0.03, 0.20, 0.06


@pytest.fixture(scope="module")
def models():
    return LWM7BA800.fit()


def test_fit_matches_every_published_point_within_tolerance(models):
    errors = models.errors()
    assert len(errors) == 2 * 6 * len(PUBLISHED_MS)
    for e in errors:
        tol = PREFILL_TOL if e.phase == "prefill" else DECODE_TOL
        assert abs(e.rel_error) <= tol, e
    decode = [abs(e.rel_error) for e in errors if e.phase == "decode"]
    assert sum(decode) / len(decode) <= DECODE_MEAN_TOL
    assert fit_table(models).count("\n") == len(errors) + 1


def test_prefill_intercept_is_the_decode_intercept_and_derived_layouts_scale_per_token_terms(models):
    for m in (models.sp1_tp8, models.sp2_tp4, models.sp4_tp2):
        assert m.prefill[0] == m.decode[0] and m.derived == ""
    tp2 = models.tp2_instance()
    A, B, C = models.sp4_tp2.prefill
    assert tp2.prefill == pytest.approx((A, 4 * B, 4 * C))
    assert "derived" in tp2.derived and "derived" in models.tp4_instance().derived


def test_elastic_cost_model_degree_four_is_the_fitted_sp4_tp2(models):
    cost = esp_cost_model(models, 2)
    assert cost.degrees == (1, 2, 3, 4)
    n = 50_000
    want = models.sp4_tp2.prefill_time(16 * n, 16 * n * n)
    assert cost.prefill_time(4, 16 * n, 16 * n * n) == pytest.approx(want)
    assert cost.prefill_time(1, n, n * n) > cost.prefill_time(2, n, n * n) > cost.prefill_time(4, n, n * n)
    assert cost.migration_time(1000) == pytest.approx(1000 * kv_seconds_per_token(2))
    assert KV_BYTES_PER_TOKEN == 2**19  # 0.5 MiB
    assert esp_cost_model(models, 8).degrees == (1,)
    with pytest.raises(ValueError, match="instance_tp"):
        esp_cost_model(models, 4)
