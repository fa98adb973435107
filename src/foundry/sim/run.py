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
from foundry.serve.config import EngineConfig
from foundry.serve.policies import POLICIES, Policy, build_policy, needs_profile
from foundry.sim.deployment import Deployment
from foundry.sim.dispatch import build_dispatcher
from foundry.sim.executor import CostModelExecutor
from foundry.sim.simulator import Instance, SimResult, Simulator


def make_policy(name: str, deployment: Deployment, *, max_num_seqs: int = 16,
                max_num_batched_tokens: int = 2048, **options: Any) -> Policy:
    """A registered policy; `options` are `EngineConfig` fields (e.g. `mlfq_base_quantum_s`)."""
    if name not in POLICIES:
        raise ValueError(f"policy: unknown {name!r}; known: {', '.join(sorted(POLICIES))}")
    config = EngineConfig(policy=name, max_num_seqs=max_num_seqs,
                          max_num_batched_tokens=max_num_batched_tokens, **options)
    profile = deployment.cost_model.to_profile() if needs_profile(config) or name == "sj-mlfq" else None
    return build_policy(config, profile)


def simulate(workload: Workload, deployment: Deployment, policy: str | Policy, *, max_num_seqs: int = 16,
             max_num_batched_tokens: int = 2048, max_model_len: int | None = None, overlap_swap: bool = False,
             check_invariants: bool = False, record_schedule: bool = False,
             policy_options: dict[str, Any] | None = None, num_instances: int = 1,
             dispatch: str = "round-robin") -> SimResult:
    """`num_instances` copies of `deployment`, each with its own policy (built by name; a policy object
    serves one instance only), requests placed by the `dispatch` dispatcher."""
    if num_instances < 1:
        raise ValueError(f"num_instances: must be >= 1, got {num_instances}")
    if not isinstance(policy, str) and num_instances > 1:
        raise ValueError("policy: give a policy name for several instances (each needs its own object)")
    instances = []
    for _ in range(num_instances):
        p = policy if not isinstance(policy, str) else make_policy(
            policy, deployment, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
            **(policy_options or {}))
        memory = BlockManager(deployment.block_size, deployment.num_device_blocks, deployment.num_host_blocks)
        executor = CostModelExecutor(deployment.cost_model, deployment.kv_bytes_per_block,
                                     deployment.link_bandwidth, overlap_swap)
        instances.append(Instance(p, memory, executor))
    sim = Simulator(instances, build_dispatcher(dispatch), max_model_len=max_model_len,
                    check_invariants=check_invariants, record_schedule=record_schedule)
    return sim.run(workload)


def simulate_report(workload: Workload, deployment: Deployment, policy: str, **kwargs: Any) -> BenchResult:
    """`simulate`, summarised with the real benchmark's report code."""
    result = simulate(workload, deployment, policy, **kwargs)
    info = {"target": f"simulated policy={policy}", "workload": workload.name,
            "num_requests": len(workload), **deployment.info, "num_instances": kwargs.get("num_instances", 1),
            "dispatch": kwargs.get("dispatch", "round-robin"),
            "num_device_blocks": deployment.num_device_blocks, "num_host_blocks": deployment.num_host_blocks}
    return result.summary(info)
