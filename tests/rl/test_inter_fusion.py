"""Inter-stage fusion (generation + inference): closed forms, hand-computed cases and brute force."""

import math

import numpy as np
import pytest

from foundry.rl.inter_fusion import (
    DEFAULT_THRESHOLDS,
    FusionCosts,
    _progress_at,
    choose_threshold,
    expected_totals,
    flat_batch,
    num_survivor_instances,
    round_robin,
    simulate_fusion,
    sweep_thresholds,
)
from foundry.rl.latency import PerTokenLatency, instance_finish_times

FLAT = PerTokenLatency({1: 1.0})  # one second per step at any batch


def step_by_step(lengths, order, max_batch, ptl):
    """Independent oracle, one decode step at a time: (finish times, [(time, running, queue)] per step)."""
    queue, running, done, now = list(order), {}, {}, 0.0
    trace = []
    while queue or running:
        while queue and len(running) < max_batch:
            running[queue.pop(0)] = 0
        now += ptl(len(running))
        for s in list(running):
            running[s] += 1
            if running[s] >= lengths[s]:
                done[s] = now
                del running[s]
        trace.append((now, dict(running), list(queue)))
    return done, trace


def test_progress_matches_step_by_step():
    rng = np.random.default_rng(3)
    ptl = PerTokenLatency({1: 0.5, 4: 0.7, 8: 1.3})
    for _ in range(5):
        lengths = rng.integers(1, 30, size=12).tolist()
        order = rng.permutation(12).tolist()
        done, trace = step_by_step(lengths, order, 4, ptl)
        assert instance_finish_times(lengths, order, 4, ptl) == pytest.approx(done)
        for now, running, queue in trace[::3]:
            # just after the step (exactly at it, float sums may put a finish on either side)
            got = _progress_at(lengths, order, 4, ptl, now + 1e-9)
            want = {**{s: float(g) for s, g in running.items()}, **{s: 0.0 for s in queue}}
            assert got == pytest.approx(want, abs=1e-6)


def test_threshold_zero_is_the_unfused_closed_form():
    # constant PTL, room for every sample: generation ends with the longest sample, then n samples of c
    # seconds each on N instances take ceil(n / N) · c
    lengths = [7, 3, 12, 5, 9, 2, 4]
    c = FusionCosts(infer_s_per_sample=1.5)
    r = simulate_fusion(lengths, 3, FLAT, 16, 0.0, c)
    assert r.gen_end == 12
    assert r.total == pytest.approx(12 + math.ceil(7 / 3) * 1.5)
    assert r.trigger is None and r.migrated == 0
    # busy: own generation (instances hold 7,5,4 / 3,9 / 12,2) + all the inference
    assert sum(r.busy) == pytest.approx(7 + 9 + 12 + 7 * 1.5)


def test_all_equal_lengths_gain_nothing():
    c = FusionCosts(infer_s_per_sample=3.0, migrate_s_per_sample=0.2)
    ptl = PerTokenLatency({1: 1.0, 8: 1.2, 64: 3.0})
    base = simulate_fusion([20] * 16, 4, ptl, 8, 0.0, c).total
    for r in sweep_thresholds([20] * 16, 4, ptl, 8, c):
        assert r.total == pytest.approx(base)
    assert choose_threshold([20] * 16, 4, ptl, 8, 3.0, 0.2) == 0.0


def test_hand_computed_two_instances_no_migration():
    # round robin: instance 0 gets lengths 10, 1; instance 1 gets 1, 1. At t = 1 three samples finish and
    # 1 < 0.5 · 4 remains: instance 0 keeps it (most work), instance 1 infers samples 1, 2, 3 (t = 1..7);
    # sample 0 ends at 10 and is inferred 10..12. Unfused: 10 + 2 · 2 = 14.
    c = FusionCosts(infer_s_per_sample=2.0)
    assert simulate_fusion([10, 1, 1, 1], 2, FLAT, 8, 0.0, c).total == 14
    r = simulate_fusion([10, 1, 1, 1], 2, FLAT, 8, 0.5, c)
    assert (r.trigger, r.survivors, r.num_kept, r.migrated) == (1.0, 1, 1, 0)
    assert (r.gen_end, r.total) == (10, 12)
    assert r.busy == (12, 7)


def test_hand_computed_two_instances_with_migration():
    # instance 0: 10, 1; instance 1: 6, 1. At t = 1 two remain (9 and 5 tokens left) < 0.75 · 4; one flat
    # instance holds both: instance 0 keeps them, sample 1 moves (0.5 s, both sides stall). Instance 0
    # resumes at 1.5: sample 1 ends 6.5, sample 0 ends 10.5. Instance 1 infers 2, 3 (1.5..5.5), then
    # sample 1 (6.5..8.5); sample 0 on instance 0 (10.5..12.5).
    c = FusionCosts(infer_s_per_sample=2.0, migrate_s_per_sample=0.5)
    r = simulate_fusion([10, 6, 1, 1], 2, FLAT, 8, 0.75, c)
    assert (r.num_kept, r.migrated) == (1, 1)
    assert (r.gen_end, r.total) == (10.5, 12.5)
    assert r.busy == (12.5, 7.5)
    assert simulate_fusion([10, 6, 1, 1], 2, FLAT, 8, 0.0, c).total == 14


def test_survivor_count_follows_flat_region_and_kv():
    ptl = PerTokenLatency({1: 1.0, 4: 1.05, 8: 1.5})
    assert flat_batch(ptl, 64, 0.1) == 4
    assert flat_batch(ptl, 3, 0.1) == 3
    c = FusionCosts(flat_tolerance=0.1)
    assert num_survivor_instances(10, 0, 8, ptl, 64, c) == 3
    # KV: 10 survivors x 1000 tokens on instances of 2500 tokens need 4
    kv = FusionCosts(flat_tolerance=0.1, kv_capacity_tokens=2500)
    assert num_survivor_instances(10, 10_000, 8, ptl, 64, kv) == 4
    assert num_survivor_instances(100, 0, 8, ptl, 64, c) == 8  # none smaller fits: all


def test_fusion_overlaps_inference_with_a_long_tail():
    lengths = [200] + [10] * 31
    c = FusionCosts(infer_s_per_sample=5.0)
    base = simulate_fusion(lengths, 4, FLAT, 16, 0.0, c)
    fused = simulate_fusion(lengths, 4, FLAT, 16, 0.2, c)
    assert base.total == 200 + 8 * 5
    # 31 short samples inferred on 3 freed instances during the tail; only the long one after it
    assert fused.gen_end == 200 and fused.total == 205
    assert fused.migrated == 0 and fused.num_kept == 1


def test_choose_threshold_is_the_argmin_of_bootstrapped_totals():
    rng = np.random.default_rng(0)
    hist = np.ceil(40 * np.exp(rng.standard_normal(48))).tolist()
    ptl = PerTokenLatency({1: 0.02, 8: 0.021, 32: 0.03, 64: 0.05})
    costs = FusionCosts(infer_s_per_sample=0.3, migrate_s_per_sample=0.05)
    totals = expected_totals(hist, 2, ptl, 64, costs, num_draws=4, seed=7)
    # brute force: the same bootstrap draws, every threshold simulated from scratch
    draws = np.random.default_rng(7)
    batches = [draws.choice(np.asarray(hist), size=len(hist), replace=True).tolist() for _ in range(4)]
    for t, total in zip(DEFAULT_THRESHOLDS, totals, strict=True):
        want = np.mean([simulate_fusion(b, 2, ptl, 64, t, costs).total for b in batches])
        assert total == pytest.approx(want)
    chosen = choose_threshold(hist, 2, ptl, 64, 0.3, 0.05, num_draws=4, seed=7)
    assert chosen == DEFAULT_THRESHOLDS[int(np.argmin(totals))]
    assert min(totals) < totals[0]  # the long tail makes fusion pay here


def test_round_robin_and_validation():
    assert round_robin(5, 2) == [[0, 2, 4], [1, 3]]
    with pytest.raises(ValueError, match="threshold"):
        simulate_fusion([1, 2], 1, FLAT, 4, 1.5)
    with pytest.raises(ValueError, match="orders"):
        simulate_fusion([1, 2], 2, FLAT, 4, 0.2, orders=[[0, 1]])


def test_survivor_instances_join_at_their_own_end_or_the_last():
    # PTL doubles at batch 2, so only batch 1 is flat and both instances keep their survivors (m = 2, nothing
    # moves). Instance 0 (10, 1) ends at 2 + 9 = 11, instance 1 (6, 1) at 2 + 5 = 7; the trigger is t = 2.
    # "own": instance 1 infers samples 2, 3 (7..11), then 1 and 0 run on both (11..13). "last": all four
    # from t = 11 on two instances, 15, as unfused.
    ptl = PerTokenLatency({1: 1.0, 2: 2.0})
    own = simulate_fusion([10, 6, 1, 1], 2, ptl, 8, 0.75,
                          FusionCosts(infer_s_per_sample=2.0, survivors_join="own"))
    assert (own.trigger, own.num_kept, own.migrated, own.gen_end, own.total) == (2.0, 2, 0, 11.0, 13.0)
    last = simulate_fusion([10, 6, 1, 1], 2, ptl, 8, 0.75, FusionCosts(infer_s_per_sample=2.0))  # the default
    assert last.total == 15.0 == simulate_fusion([10, 6, 1, 1], 2, ptl, 8, 0.0, FusionCosts(2.0)).total
