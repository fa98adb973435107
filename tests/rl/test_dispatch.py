"""PTL, the one-instance latency model and the dispatchers, against hand computations and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from foundry.rl.dispatch import (
    dispatch,
    dispatch_balanced,
    dispatch_random,
    dispatch_skew,
    finish_times,
    instance_times,
    makespan,
)
from foundry.rl.latency import PerTokenLatency, closed_form_latency, instance_finish_times, instance_makespan

# flat while memory-bound, then linear: the shape of a real GPU's decode step (reference §2.4, Fig. 6)
FLAT_THEN_RISING = PerTokenLatency({1: 1.0, 4: 1.0, 16: 4.0})
# almost proportional to the batch: batching buys nearly nothing, only total work matters
NEARLY_LINEAR = PerTokenLatency({1: 1.0, 64: 64.5})


def test_ptl_interpolates_extrapolates_and_validates():
    ptl = PerTokenLatency({1: 1.0, 5: 1.0, 9: 3.0})
    assert ptl(0.5) == 1.0 and ptl(3) == 1.0  # below the first point: flat
    assert ptl(7) == pytest.approx(2.0)
    assert ptl(13) == pytest.approx(5.0)  # the last slope (0.5 / sequence) continues
    assert PerTokenLatency({8: 2.0})(100) == 2.0  # one point: constant
    noisy = PerTokenLatency({1: 1.0, 2: 3.0, 4: 2.0, 8: 5.0})  # a dip is measurement noise
    assert noisy.seconds == [1.0, 2.5, 2.5, 5.0]
    assert all(a <= b for a, b in itertools.pairwise(noisy(b) for b in range(1, 20)))
    for bad in ({}, {0: 1.0}, {1: 0.0}, {1: -1.0}, {1: math.inf}):
        with pytest.raises(ValueError):
            PerTokenLatency(bad)


def test_instance_makespan_hand_computed():
    # batch cap 2, PTL(1)=1, PTL(2)=1.5. Samples 0 (4 tokens) and 1 (1) start; after 1 step (1.5 s) sample
    # 1 ends and 2 (2 tokens) joins; 2 more steps at batch 2 (3 s): sample 2 ends at 4.5 with sample 0 at
    # 3 of 4; its last step runs alone (1 s): 5.5.
    ptl = PerTokenLatency({1: 1.0, 2: 1.5})
    assert instance_finish_times([4, 1, 2], [0, 1, 2], 2, ptl) == {1: 1.5, 2: 4.5, 0: 5.5}
    assert instance_makespan([4, 1, 2], [0, 1, 2], 2, ptl) == 5.5
    assert instance_makespan([4, 1, 2], [0, 1, 2], 1, ptl) == 7.0  # one at a time: the sum
    assert instance_makespan([], [], 4, ptl) == 0.0


def _step_by_step(lengths, order, max_batch, ptl):
    """The obvious simulation: one decode step per loop iteration."""
    left, waiting, running, now, finish = dict(enumerate(lengths)), list(order), [], 0.0, {}
    while waiting or running:
        while waiting and len(running) < max_batch:
            running.append(waiting.pop(0))
        now += ptl(len(running))
        for s in running:
            left[s] -= 1
        for s in [s for s in running if left[s] == 0]:
            running.remove(s)
            finish[s] = now
    return finish


def test_instance_simulation_matches_step_by_step():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 12))
        lengths = rng.integers(1, 30, size=n).tolist()
        order = rng.permutation(n).tolist()
        cap = int(rng.integers(1, 6))
        got = instance_finish_times(lengths, order, cap, FLAT_THEN_RISING)
        want = _step_by_step(lengths, order, cap, FLAT_THEN_RISING)
        assert got.keys() == want.keys()
        assert all(got[s] == pytest.approx(want[s]) for s in got)


def test_closed_form_exact_for_equal_lengths_and_full_waves_else_above():
    for m, bs, length in ((12, 4, 7), (16, 16, 3), (9, 3, 10)):
        exact = instance_makespan([length] * m, list(range(m)), bs, FLAT_THEN_RISING)
        assert closed_form_latency(m, length, bs, FLAT_THEN_RISING) == pytest.approx(exact)
    exact = instance_makespan([5] * 10, list(range(10)), 8, FLAT_THEN_RISING)  # last wave of 2 is cheaper
    assert closed_form_latency(10, 5, 8, FLAT_THEN_RISING) > exact


def _brute_force_opt(lengths, m):
    best = math.inf
    for assign in itertools.product(range(m), repeat=len(lengths)):
        loads = [0] * m
        for length, k in zip(lengths, assign, strict=True):
            loads[k] += length
        best = min(best, max(loads))
    return best


def test_lpt_within_four_thirds_of_optimal():
    # identical machines: one sample at a time at a constant PTL, so an instance's makespan is its sum
    ptl = PerTokenLatency({1: 1.0})
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(80):
        m = int(rng.integers(2, 4))
        lengths = rng.integers(1, 20, size=int(rng.integers(m + 1, 8))).tolist()
        plan = dispatch_balanced(lengths, m, 1)
        got = makespan(plan, lengths, ptl)
        assert got == max(sum(lengths[s] for s in p.order) for p in plan.instances)
        opt = _brute_force_opt(lengths, m)
        assert got <= (4 / 3 - 1 / (3 * m)) * opt + 1e-9  # Graham's bound
        worst = max(worst, got / opt)
    assert worst > 1.0  # the cases are not all trivial: LPT is not always optimal


def _heavy_tailed(seed, num=128, median=100.0, sigma=1.2, cap=2000):
    rng = np.random.default_rng(seed)
    return np.minimum(np.ceil(rng.lognormal(math.log(median), sigma, num)), cap).tolist()


def _skew_vs_random(ptl):
    out = []
    for seed in range(100):
        lengths = _heavy_tailed(seed)
        rand = makespan(dispatch_random(len(lengths), 4, 64, seed=seed), lengths, ptl)
        skew = makespan(dispatch_skew(lengths, 4, ptl, 64), lengths, ptl)  # oracle: true lengths
        balanced = makespan(dispatch_balanced(lengths, 4, 64), lengths, ptl)
        out.append((rand, skew, balanced))
    return np.array(out)


def test_skew_aware_beats_random_where_ptl_is_flat_then_rising():
    # 128 log-normal lengths (sigma 1.2, capped at 2000) on 4 instances of batch 64. With a flat-then-
    # rising PTL the long tail runs faster at a small batch: skew-aware (oracle ranker) is 22% faster
    # than random on average and no slower in 99 of 100 draws (measured; in the other it is 2% slower:
    # its two-group family of plans does not contain every good plan). Balanced (LPT on total length)
    # gains only 6%.
    r = _skew_vs_random(FLAT_THEN_RISING)
    assert np.sum(r[:, 1] <= r[:, 0]) >= 95
    assert np.mean(r[:, 1] / r[:, 0]) < 0.85
    assert np.mean(r[:, 1]) < np.mean(r[:, 2]) < np.mean(r[:, 0])


def test_skew_aware_where_ptl_is_nearly_linear():
    # With PTL nearly proportional to the batch, an instance's time is ~ its total tokens whatever the
    # batch: small batches buy nothing and only balance matters. Skew-aware is then about as good as
    # random (measured: 3% faster on average, no slower in only 61 of 100 draws, up to 22% slower: its
    # two groups split the instances in whole numbers), while LPT on total length (`balanced`) is 21%
    # faster. Algorithm 2's gain needs a PTL that is flat at small batch.
    r = _skew_vs_random(NEARLY_LINEAR)
    assert np.sum(r[:, 1] <= r[:, 0]) < 95
    assert abs(np.mean(r[:, 1] / r[:, 0]) - 1) < 0.1
    assert np.mean(r[:, 2] / r[:, 0]) < 0.85
    assert np.all(r[:, 2] <= r[:, 0])


def _groups_of(num_groups, size):
    return [g for g in range(num_groups) for _ in range(size)]


@pytest.mark.parametrize("method", ["random", "balanced", "skew"])
def test_groups_stay_together_and_every_sample_is_placed_once(method):
    groups = _groups_of(24, 4)
    lengths = _heavy_tailed(3, num=len(groups))
    plan = dispatch(method, lengths, 5, FLAT_THEN_RISING, 32, groups=groups, seed=2)
    placed = [s for p in plan.instances for s in p.order]
    assert sorted(placed) == list(range(len(groups)))
    where = plan.instance_of()
    for g in range(24):
        members = [i for i, x in enumerate(groups) if x == g]
        assert len({where[i] for i in members}) == 1
        order = plan.instances[where[members[0]]].order
        first = order.index(members[0])
        assert sorted(order[first:first + len(members)]) == members  # admitted together


def test_skew_split_and_admission_order():
    lengths = _heavy_tailed(5)
    for combine in ("max", "sum"):
        plan = dispatch_skew(lengths, 6, FLAT_THEN_RISING, 64, combine=combine)
        n_long = plan.info["num_long_instances"]
        assert 1 <= n_long <= 5
        long_batch = plan.info["long_batch"]
        assert all(p.max_batch == long_batch for p in plan.instances[:n_long])
        assert all(p.max_batch == 64 for p in plan.instances[n_long:])
        top = set(np.argsort(-np.asarray(lengths), kind="stable")[:math.ceil(0.2 * len(lengths))].tolist())
        assert {s for p in plan.instances[:n_long] for s in p.order} == top
        for p in plan.instances:  # longest predicted first
            assert all(lengths[a] >= lengths[b] for a, b in itertools.pairwise(p.order))
        # with the true lengths as predictions, the predicted objective is the plan's own latency
        times = instance_times(plan, lengths, FLAT_THEN_RISING)
        t_long, t_rest = max(times[:n_long]), max(times[n_long:])
        want = max(t_long, t_rest) if combine == "max" else t_long + t_rest
        assert plan.info["predicted_makespan"] == pytest.approx(want)


def test_skew_uses_history_percentiles_and_degenerate_cases():
    lengths = _heavy_tailed(7, num=40)
    history = _heavy_tailed(8, num=200)
    plan = dispatch_skew(lengths, 4, FLAT_THEN_RISING, 16, history=history)
    p90, p50 = np.percentile(history, [90, 50])
    n_long = plan.info["num_long_instances"]
    times = [instance_makespan([p90 if k < n_long else p50] * 40, p.order, p.max_batch, FLAT_THEN_RISING)
             for k, p in enumerate(plan.instances)]
    assert plan.info["predicted_makespan"] == pytest.approx(max(max(times[:n_long]), max(times[n_long:])))
    one = dispatch_skew(lengths, 1, FLAT_THEN_RISING, 16)
    assert len(one.instances) == 1 and sorted(one.instances[0].order) == list(range(40))
    with pytest.raises(ValueError):
        dispatch_skew(lengths, 0, FLAT_THEN_RISING, 16)
    with pytest.raises(ValueError):
        dispatch("fifo", lengths, 2, FLAT_THEN_RISING, 16)


def test_random_is_seeded_and_finish_times_agree_with_makespan():
    lengths = _heavy_tailed(9, num=30)
    a = dispatch_random(30, 3, 8, seed=4)
    assert a == dispatch_random(30, 3, 8, seed=4) and a != dispatch_random(30, 3, 8, seed=5)
    assert [len(p.order) for p in a.instances] == [10, 10, 10]
    assert max(finish_times(a, lengths, FLAT_THEN_RISING)) == makespan(a, lengths, FLAT_THEN_RISING)
