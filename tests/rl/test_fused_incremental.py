"""The incremental evaluator (foundry.rl.fused.incremental) against full list scheduling."""

from __future__ import annotations

import random

import pytest

from foundry.rl.fused import PUBLISHED, FusedConfig, evaluate_tokens, greedy_orders, seq_1f1b_orders
from foundry.rl.fused.incremental import IncrementalSchedule


def _tails_are_exact(sched: IncrementalSchedule) -> bool:
    kept = list(sched.tail)
    sched._full_tails()
    return kept == sched.tail


@pytest.mark.parametrize(("cfg", "start"), [
    (FusedConfig(4, 2, 4, 3, 3, 2), "seq"),
    (PUBLISHED[2][0], "greedy"),
    (PUBLISHED[8][0], "actor"),
])
def test_random_swaps_match_full_evaluation(cfg, start):
    orders = {"seq": seq_1f1b_orders(cfg), "greedy": greedy_orders(cfg),
              "actor": greedy_orders(cfg, "actor")}[start]
    sched = IncrementalSchedule(cfg, orders)
    assert (sched.makespan(), sched.sum_finish()) == evaluate_tokens(cfg, orders)
    rng = random.Random(7)
    counts = {"deadlock": 0, "over limit": 0, "undone": 0, "kept": 0}
    for _ in range(1500):
        n = rng.randrange(cfg.nodes)
        p = rng.randrange(len(sched.order[n]) - 1)
        toks = sched.tokens()
        if toks[n][p] == toks[n][p + 1]:
            continue
        cur = (sched.makespan(), sched.sum_finish())
        toks[n][p], toks[n][p + 1] = toks[n][p + 1], toks[n][p]
        ref = evaluate_tokens(cfg, toks)
        limit = cur[0] + rng.randrange(3)
        ok = sched.swap(n, p, limit)
        if ref is None or ref[0] > limit:
            # refused, and nothing changed
            assert not ok and (sched.makespan(), sched.sum_finish()) == cur
            counts["deadlock" if ref is None else "over limit"] += 1
            continue
        assert ok and (sched.makespan(), sched.sum_finish()) == ref
        if rng.random() < 0.5:
            sched.undo()
            assert (sched.makespan(), sched.sum_finish()) == cur
            counts["undone"] += 1
        else:
            sched.commit()
            counts["kept"] += 1
    assert min(counts.values()) > 20, counts
    assert (sched.makespan(), sched.sum_finish()) == evaluate_tokens(cfg, sched.tokens())
    assert _tails_are_exact(sched)


def test_deadlocking_start_is_refused():
    cfg = FusedConfig(4, 2, 4, 3, 3, 2)
    orders = seq_1f1b_orders(cfg)
    orders[-1][0], orders[-1][1] = orders[-1][1], orders[-1][0]  # last stage: backward before forward
    assert evaluate_tokens(cfg, orders) is None
    with pytest.raises(ValueError, match="deadlock"):
        IncrementalSchedule(cfg, orders)
