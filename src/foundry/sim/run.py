"""One simulated benchmark run: build the policy from the engine's registry, the pools, the loop.

Policies come from `foundry.serve.policies.build_policy`, the same function the engine calls, so
every registered policy (fcfs, vllm, mlfq, sj-mlfq, srpt, and any added later) runs here unchanged.
A policy that reads a latency profile (skip-join MLFQ, a scaled quantum) gets one computed from the
deployment's cost model (`CostModel.to_profile`), the simulator's counterpart of `foundry serve profile`.
"""

from __future__ import annotations

from typing import Any

from foundry.serve.bench.report import BenchResult
from foundry.serve.bench.workloads import Workload
from foundry.serve.block_manager import BlockManager
from foundry.serve.config import SchedulerConfig
from foundry.serve.policies import Policy, build_policy, needs_profile
from foundry.sim.deployment import Deployment
from foundry.sim.dispatch import build_dispatcher
from foundry.sim.executor import CostModelExecutor
from foundry.sim.simulator import Instance, SimResult, Simulator


def make_policy(scheduler: SchedulerConfig | str, deployment: Deployment) -> Policy:
    """The configured policy (a name: with the defaults); a profile, where it reads one, is the cost
    model's."""
    if isinstance(scheduler, str):
        scheduler = SchedulerConfig(policy=scheduler)
    profile = deployment.cost_model.to_profile() if needs_profile(scheduler) else None
    return build_policy(scheduler, profile)


def simulate(workload: Workload, deployment: Deployment, policy: str | SchedulerConfig | Policy, *,
             max_model_len: int | None = None, overlap_swap: bool = False, check_invariants: bool = False,
             record_schedule: bool = False, num_instances: int = 1, dispatch: str = "round-robin",
             prefix_caching: bool = False, shared_prefix_len: int = 0, **scheduler: Any) -> SimResult:
    """`num_instances` copies of `deployment`, each with its own policy, requests placed by the
    `dispatch` dispatcher. `policy` is a name (then `scheduler` holds `SchedulerConfig` fields by their
    flat names, e.g. `max_num_seqs=16, mlfq_memory_mode="recompute"`), a `SchedulerConfig`, or a policy
    object (one instance only: an object serves one instance). `prefix_caching` gives each instance the
    engine's prefix cache; `shared_prefix_len` makes that many first prompt tokens common to all."""
    if num_instances < 1:
        raise ValueError(f"num_instances: must be >= 1, got {num_instances}")
    if isinstance(policy, str):
        policy = SchedulerConfig(policy=policy, **scheduler)
    elif scheduler:
        raise ValueError(f"policy: scheduler options {sorted(scheduler)} go with a policy name only")
    if isinstance(policy, Policy) and num_instances > 1:
        raise ValueError("policy: give a policy name for several instances (each needs its own object)")
    instances = []
    for _ in range(num_instances):
        p = policy if isinstance(policy, Policy) else make_policy(policy, deployment)
        memory = BlockManager(deployment.block_size, deployment.num_device_blocks, deployment.num_host_blocks,
                              prefix_caching=prefix_caching)
        executor = CostModelExecutor(deployment.cost_model, deployment.kv_bytes_per_block,
                                     deployment.link_bandwidth, overlap_swap)
        instances.append(Instance(p, memory, executor))
    sim = Simulator(instances, build_dispatcher(dispatch), max_model_len=max_model_len,
                    check_invariants=check_invariants, record_schedule=record_schedule,
                    shared_prefix_len=shared_prefix_len)
    return sim.run(workload)


def simulate_report(workload: Workload, deployment: Deployment, policy: str | SchedulerConfig,
                    **kwargs: Any) -> BenchResult:
    """`simulate`, summarised with the real benchmark's report code."""
    result = simulate(workload, deployment, policy, **kwargs)
    info = {"target": f"simulated policy={getattr(policy, 'policy', policy)}", "workload": workload.name,
            "num_requests": len(workload), **deployment.info, "num_instances": kwargs.get("num_instances", 1),
            "dispatch": kwargs.get("dispatch", "round-robin"),
            "num_device_blocks": deployment.num_device_blocks, "num_host_blocks": deployment.num_host_blocks}
    return result.summary(info)
