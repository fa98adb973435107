"""The search's critical moves and split greedy starts (foundry.rl.fused.search)."""

from __future__ import annotations

from foundry.rl.fused import PUBLISHED, check_schedule, evaluate_tokens, greedy_orders, search
from foundry.rl.fused.search import greedy_starts


def test_critical_moves_reach_the_bound_where_uniform_swaps_do_not():
    cfg, _seq, fused, tight = PUBLISHED[8]  # 16/8 stages, greedy 202, bound 186
    # a fixed number of moves: the same search on any machine (~1 s each)
    res = search(cfg, seed=0, max_iters=60_000)
    assert res.makespan == tight == fused
    check_schedule(cfg, res.tasks(cfg))
    uniform = search(cfg, seed=0, max_iters=60_000, p_critical=0.0)
    assert uniform.makespan > tight
    assert res.greedy_makespan == uniform.greedy_makespan > uniform.makespan


def test_split_greedy_start_beats_the_actor_first_starts():
    cfg = PUBLISHED[10][0]  # 16/16 stages: the critic first on nodes 0-4 starts closer to the bound
    first_three = min(evaluate_tokens(cfg, greedy_orders(cfg, t))[0] for t in ("", "actor", "both"))
    split = greedy_orders(cfg, "primary", [1] * 5 + [0] * 11)
    assert evaluate_tokens(cfg, split)[0] == 333 < first_three == 339


def test_greedy_starts_are_valid():
    cfg = PUBLISHED[2][0]
    starts = list(greedy_starts(cfg))
    assert len(starts) == 3 + 2 * (cfg.nodes + 1) - 1
    assert starts[1] == greedy_orders(cfg, "actor") == greedy_orders(cfg, "primary", [0] * cfg.nodes)
    for orders in starts:
        assert evaluate_tokens(cfg, orders) is not None
