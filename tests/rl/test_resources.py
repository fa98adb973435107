"""Algorithm 1 (one pool, two pools), the elastic rule and the fit, against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from foundry.rl.resources import (
    InverseModel,
    allocate_one_pool,
    allocate_two_pools,
    elastic_schedule,
    fit_inverse,
    should_add_gen_unit,
)


def _random_estimators(rng):
    """A generation time that plateaus and a training time that keeps scaling, with some noise so
    ties and non-convexity happen."""
    a, b, c = rng.uniform(50, 200), rng.uniform(5, 40), rng.uniform(50, 400)
    jitter = rng.uniform(0, 3, size=200)
    return (lambda x: a / x + b + jitter[x]), (lambda y: c / y + jitter[100 + y])


def test_one_pool_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(40):
        p_gen, p_train = _random_estimators(rng)
        n = int(rng.integers(2, 30))
        min_train = int(rng.integers(1, n))
        got = allocate_one_pool(n, p_gen, p_train, min_train=min_train)
        best = min(max(p_gen(x), p_train(y)) for x in range(1, n + 1) for y in range(min_train, n + 1 - x))
        assert got.iteration_time == pytest.approx(best)
        assert got.gen_units + got.train_units <= n and got.train_units >= min_train
        assert got.t_gen == p_gen(got.gen_units) and got.t_train == p_train(got.train_units)


def test_one_pool_calls_each_size_once_and_gives_spare_units_away():
    calls = []

    def p_gen(x):
        calls.append(x)
        return 100.0 if x < 3 else 10.0  # 3 units are all generation needs

    alloc = allocate_one_pool(10, p_gen, lambda y: 60.0 / y)
    assert sorted(calls) == sorted(set(calls))
    assert (alloc.gen_units, alloc.train_units) == (3, 7)  # the spare units shorten training
    with pytest.raises(ValueError):
        allocate_one_pool(3, p_gen, lambda y: 1.0, min_gen=2, min_train=2)


def test_two_pools_shrink_the_faster_side_like_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(40):
        p_gen, p_train = _random_estimators(rng)
        m, n = int(rng.integers(1, 20)), int(rng.integers(1, 20))
        got = allocate_two_pools(m, n, p_gen, p_train)
        t_gen, t_train = p_gen(m), p_train(n)
        if t_gen < t_train:
            assert got.train_units == n
            gaps = [abs(p_gen(k) - t_train) for k in range(1, m + 1)]
            assert abs(got.t_gen - t_train) == min(gaps)
        else:
            assert got.gen_units == m
            gaps = [abs(p_train(k) - t_gen) for k in range(1, n + 1)]
            assert abs(got.t_train - t_gen) == min(gaps)
    # the floor on the shrunk side holds
    alloc = allocate_two_pools(8, 8, lambda x: 100.0 / x, lambda y: 1.0 / y, min_train=3)
    assert (alloc.gen_units, alloc.train_units) == (8, 3)


def test_elastic_rule_is_add_when_one_more_unit_does_not_overshoot():
    rng = np.random.default_rng(2)
    for _ in range(200):
        t_gen, t_train, t_more = rng.uniform(1, 100, size=3)
        t_more = min(t_more, t_gen)
        assert should_add_gen_unit(t_gen, t_train, t_more) == (t_more >= t_train)


def test_elastic_schedule_follows_growing_lengths():
    # output length grows 10K -> 20K over 20 iterations (StreamRL Fig. 11's scenario): P_gen(x) = a_i / x
    # with a_i growing linearly, training fixed at 40 s; brute force: add while a_i / (x + 1) >= 40
    a = np.linspace(200, 400, 20)
    gens = [lambda x, ai=ai: ai / x for ai in a]
    got = elastic_schedule(4, gens, [40.0] * 20, max_units=16)
    x, want = 4, []
    for ai in a:
        if ai / (x + 1) >= 40.0:
            x += 1
        want.append(x)
    assert got == want
    assert got[0] == 5 and got[-1] == 10 and all(b - a in (0, 1) for a, b in zip(got, got[1:], strict=False))
    assert all(ai / x >= 40.0 for ai, x in zip(a, got, strict=True))  # never overshoots below training
    assert a[-1] / (got[-1] + 1) < 40.0  # and has caught up by the end
    assert elastic_schedule(4, gens, [40.0] * 20, max_units=6)[-1] == 6


def test_fit_inverse_recovers_exact_points_and_matches_nnls():
    model = fit_inverse({u: 120.0 / u + 7.0 for u in (1, 2, 4, 8, 16)})
    assert model.a == pytest.approx(120.0) and model.b == pytest.approx(7.0)
    assert fit_inverse({4: 10.0}) == InverseModel(40.0, 0.0)
    rng = np.random.default_rng(3)
    for _ in range(30):
        units = sorted(set(rng.integers(1, 64, size=int(rng.integers(2, 8))).tolist()))
        if len(units) < 2:
            continue
        times = {u: float(rng.uniform(1, 100)) for u in units}
        got = fit_inverse(times)
        u = np.array(units, dtype=float)
        t = np.array([times[k] for k in units])
        _, residual = nnls(np.stack([1 / u, np.ones_like(u)], axis=1), t)
        mine = np.sqrt(np.sum((got.a / u + got.b - t) ** 2))
        assert got.a >= 0 and got.b >= 0
        assert mine == pytest.approx(residual, rel=1e-6, abs=1e-9)
    with pytest.raises(ValueError):
        fit_inverse({})
