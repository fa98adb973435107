import random

import pytest

from foundry.serve.elastic.batching import Batching, batch_prefills, brute_force, objective


def _linear_cost(coeffs):
    def t(k, sum_len, sum_sq):
        a, b, c = coeffs[k]
        return a + b * sum_len + c * sum_sq
    return t


def _random_cost(rng: random.Random, m: int):
    """A_k grows with k (ring setup), B_k and C_k shrink roughly like 1/k (more compute), noisily."""
    return _linear_cost({k: (rng.uniform(0.0, 0.5) * k, rng.uniform(0.5, 1.5) / k, rng.uniform(0.0, 0.05) / k)
                         for k in range(1, m + 1)})


def _assert_valid(b: Batching, lengths, instances, free, cost):
    served = [r for batch in b.batches for r in batch.requests]
    assert sorted(served) == list(range(len(lengths)))
    used = [i for batch in b.batches for i in batch.instances]
    assert used == list(instances[:len(used)])  # consecutive groups of a prefix of the order
    for batch in b.batches:
        assert batch.instances
        ls = [lengths[r] for r in batch.requests]
        assert sum(ls) <= sum(free[instances.index(i)] for i in batch.instances)
        assert batch.time == pytest.approx(cost(len(batch.instances), sum(ls), sum(x * x for x in ls)))
    assert objective(b, lengths) == pytest.approx(b.objective)


def test_dp_equals_brute_force_on_500_random_cases():
    rng = random.Random(20240415)
    feasible = 0
    for _ in range(500):
        n, m = rng.randint(1, 7), rng.randint(1, 4)
        lengths = [rng.randint(1, 40) for _ in range(n)]
        instances = rng.sample(range(6), m)
        free = [rng.randint(5, 90) for _ in range(m)]
        cost = _random_cost(rng, m)
        got = batch_prefills(lengths, instances, free, cost)
        want = brute_force(lengths, instances, free, cost)
        if want is None:
            assert got is None and sum(lengths) > sum(free)
            continue
        feasible += 1
        assert got is not None
        assert got.objective == pytest.approx(want.objective, rel=1e-12, abs=1e-12)
        _assert_valid(got, lengths, instances, free, cost)
        pruned = batch_prefills(lengths, instances, free, cost, monotone=True)
        assert pruned is not None  # one batch on every instance always fits when anything does
        _assert_valid(pruned, lengths, instances, free, cost)
        assert pruned.objective >= got.objective - 1e-12
    assert feasible > 300


def test_one_request_takes_one_instance_unless_it_needs_more():
    cost = _linear_cost({1: (0.0, 1.0, 0.0), 2: (5.0, 0.5, 0.0)})
    b = batch_prefills([10], [7, 3], [20, 20], cost)
    assert b is not None and [x.instances for x in b.batches] == [(7,)]
    assert b.objective == pytest.approx(1.0)  # T_1(10)/10
    b = batch_prefills([30], [7, 3], [20, 20], cost)  # does not fit one instance: ring of two
    assert b is not None and [x.instances for x in b.batches] == [(7, 3)]
    assert b.objective == pytest.approx((5 + 15) / 30)


def test_two_requests_share_a_ring_when_sp_pays():
    # separate: 2 × T_1(10)/10 = 2; together on two: T_2(20)·(2/10) = 8·0.2 = 1.6
    cost = _linear_cost({1: (0.0, 1.0, 0.0), 2: (0.0, 0.4, 0.0)})
    b = batch_prefills([10, 10], [0, 1], [50, 50], cost)
    assert b is not None and len(b.batches) == 1 and b.batches[0].instances == (0, 1)
    assert b.objective == pytest.approx(1.6)


def test_quadratic_cost_puts_the_long_prompt_alone_on_the_first_instances():
    cost = _linear_cost({1: (0.0, 0.0, 1.0), 2: (0.0, 0.0, 0.3), 3: (0.0, 0.0, 0.2)})
    lengths = [2, 100, 3]
    b = batch_prefills(lengths, [5, 6, 7], [200, 200, 200], cost)
    assert b is not None
    assert b.batches[0].requests == (1,) and b.batches[0].instances in ((5, 6), (5,), (5, 6, 7))
    assert b.objective == pytest.approx(brute_force(lengths, [5, 6, 7], [200] * 3, cost).objective)


def test_infeasible_and_empty():
    cost = _linear_cost({1: (0.0, 1.0, 0.0)})
    assert batch_prefills([10, 10], [0], [19], cost) is None
    assert brute_force([10, 10], [0], [19], cost) is None
    assert batch_prefills([], [0], [5], cost) == Batching((), 0.0)
    with pytest.raises(ValueError, match=">= 1"):
        batch_prefills([0], [0], [5], cost)


def test_loongserves_pruning_only_ever_returns_one_batch():
    """As read from LoongServe's main.cpp: dp[1][j] is one batch on all j instances, and the pruning
    then forces every last batch onto all j instances (see the module docstring)."""
    rng = random.Random(7)
    cost = _linear_cost({k: (0.015 + 0.005 * k, 6.5e-5 / k, 4e-10 / k) for k in range(1, 9)})
    for _ in range(100):
        n, m = rng.randint(1, 12), rng.randint(1, 8)
        lengths = [rng.randint(10, 50000) for _ in range(n)]
        free = [200000] * m
        pruned = batch_prefills(lengths, list(range(m)), free, cost, monotone=True)
        exact = batch_prefills(lengths, list(range(m)), free, cost)
        if exact is None:
            assert pruned is None
            continue
        assert pruned is not None and len(pruned.batches) == 1
        assert pruned.objective >= exact.objective - 1e-12
