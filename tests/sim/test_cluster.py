"""Several instances under a dispatcher: placement, per-instance and cluster figures, and that a
cluster of one is the lone simulator (the schedule fingerprints check that on 48 runs)."""

import math
from dataclasses import replace

import pytest

from foundry.serve.bench.workloads import RequestSpec, Workload, build_workload
from foundry.sim import LeastLoaded, RoundRobin, resolve_deployment, simulate, simulate_report


def test_round_robin_places_in_turn_and_least_loaded_fills_the_emptiest():
    dep = resolve_deployment("opt-13b-a100")
    w = Workload("six", tuple(RequestSpec(0.0, 64, 8) for _ in range(6)))
    assert simulate(w, dep, "vllm", num_instances=3).placement == [0, 1, 2, 0, 1, 2]
    assert simulate(w, dep, "vllm", num_instances=4, dispatch="least-loaded").placement == [0, 1, 2, 3, 0, 1]
    assert RoundRobin().choose(None, [object()]) == 0 and LeastLoaded().name == "least-loaded"
    with pytest.raises(ValueError, match="dispatch: unknown 'random'"):
        simulate(w, dep, "vllm", num_instances=2, dispatch="random")


def test_cluster_figures_are_the_instances_summed_and_each_instance_reports():
    dep = resolve_deployment("opt-13b-a100", num_device_blocks=300, num_host_blocks=200)
    w = build_workload(num_requests=200, rate=8, generator="pareto", prompt_len=128, output_len=64, seed=0)
    res = simulate(w, dep, "sj-mlfq", num_instances=2, check_invariants=True)
    a, b = res.instances
    placed = [p for p in res.placement if p >= 0]  # (a request too long for the pool is refused)
    assert res.stats.num_steps == a.num_steps + b.num_steps > 0
    assert res.stats.num_finished == a.num_finished + b.num_finished == sum(r.ok for r in res.records)
    assert len(placed) == res.stats.num_finished >= 190 and sorted(set(placed)) == [0, 1]
    assert res.stats.busy_time == pytest.approx(a.busy_time + b.busy_time)
    assert res.stats.end_time == max(a.end_time, b.end_time)
    sim = simulate_report(w, dep, "sj-mlfq", num_instances=2).info["simulator"]
    assert [i["num_requests"] for i in sim["instances"]] == [placed.count(0), placed.count(1)]
    assert all(i["mean_e2e_s"] > 0 for i in sim["instances"])


def test_one_instance_is_the_lone_simulator_and_two_halve_the_load():
    dep = resolve_deployment("opt-13b-a100")
    w = build_workload(num_requests=300, rate=12, generator="pareto", prompt_len=128, output_len=64, seed=1)
    one = simulate(w, dep, "vllm", record_schedule=True)
    also_one = simulate(w, dep, "vllm", record_schedule=True, num_instances=1, dispatch="least-loaded")
    assert one.schedule == also_one.schedule
    assert replace(one.stats, wall_time=0) == replace(also_one.stats, wall_time=0)
    two = simulate(w, dep, "vllm", num_instances=2)
    e2e = [sum(r.e2e for r in res.records) / len(res.records) for res in (one, two)]
    assert e2e[1] < e2e[0] and not math.isnan(e2e[1])
