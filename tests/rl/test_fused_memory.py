"""The memory cap in the checker and the memory pass (foundry.rl.fused.memory)."""

from __future__ import annotations

import pytest

from foundry.rl.fused import (
    FusedConfig,
    InvalidSchedule,
    check_schedule,
    evaluate_schedule,
    evaluate_tokens,
    greedy_orders,
    memory_pass,
    peak_memory_tokens,
    search,
    seq_1f1b_orders,
    tokens_to_tasks,
)

SMALL = FusedConfig(4, 2, 4, 3, 3, 2)


def test_checker_refuses_a_schedule_over_the_cap_and_names_the_node():
    tasks = tokens_to_tasks(SMALL, seq_1f1b_orders(SMALL))
    ev = evaluate_schedule(SMALL, tasks)
    assert ev.node_peaks == [4, 3, 2, 2]  # node 0: actor stage 0's 1F1B warm-up holds pp0 = 4
    check_schedule(SMALL, tasks, memory_cap=4)
    with pytest.raises(InvalidSchedule, match=r"node 0 \(actor stage 0, critic stage 1\) holds 4 .* cap 3"):
        check_schedule(SMALL, tasks, memory_cap=3)


@pytest.mark.parametrize("seed", [0, 1])
def test_memory_pass_meets_a_reachable_cap_without_raising_the_makespan(seed):
    greedy = greedy_orders(SMALL)
    makespan = evaluate_tokens(SMALL, greedy)[0]
    assert peak_memory_tokens(greedy)[0] == 7
    res = memory_pass(SMALL, greedy, memory_cap=5, budget_s=1.0, seed=seed)
    assert res.cap_met and res.peak_memory <= 5 and res.start_peak_memory == 7
    assert res.makespan == evaluate_tokens(SMALL, res.orders)[0] <= makespan
    check_schedule(SMALL, tokens_to_tasks(SMALL, res.orders), memory_cap=5)


def test_memory_pass_reports_an_unreachable_cap_and_keeps_the_makespan():
    greedy = greedy_orders(SMALL)
    makespan = evaluate_tokens(SMALL, greedy)[0]
    res = memory_pass(SMALL, greedy, memory_cap=1, budget_s=0.2)
    assert res.cap_met is False and 1 < res.peak_memory <= 7
    assert res.makespan == evaluate_tokens(SMALL, res.orders)[0] <= makespan


def test_search_runs_the_memory_pass_after_annealing():
    # the annealing (a fixed number of moves) reaches the bound with peak 6; the pass gets to 5 (~0.05 s)
    res = search(SMALL, memory_cap=5, memory_budget_s=1.0, max_iters=20_000)
    assert res.memory_cap_met and res.peak_memory <= 5 < res.sa_peak_memory
    ev = evaluate_schedule(SMALL, res.tasks(SMALL), memory_cap=5)
    assert ev.makespan == res.makespan and ev.peak_memory == res.peak_memory
    plain = search(SMALL, max_iters=20_000)
    assert plain.memory_cap_met is None and plain.peak_memory == plain.sa_peak_memory
