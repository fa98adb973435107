"""Generation of one RL batch on foundry's multi-instance simulator, following a dispatch plan.

Each instance is the engine's core with the FCFS policy (continuous batching, run to completion) on a
roofline cost model (`foundry.sim`). `PlanDispatcher` places each request where the plan says; the
workload lists each instance's samples in the plan's order, so FCFS admits them in that order, and each
instance's `max_num_seqs` is the plan's batch cap. All prompts arrive at 0. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from foundry.rl.dispatch import DispatchPlan, dispatch_random, dispatch_skew
from foundry.rl.latency import PerTokenLatency
from foundry.rl.paper_config import Batch, PaperSimConfig
from foundry.serve.bench.workloads import RequestSpec, Workload
from foundry.serve.block_manager import BlockManager
from foundry.serve.config import SchedulerConfig
from foundry.serve.core import EngineCore
from foundry.serve.sequence import Sequence as EngineSequence
from foundry.sim.deployment import Deployment, resolve_deployment
from foundry.sim.dispatch import Dispatcher
from foundry.sim.executor import CostModelExecutor
from foundry.sim.run import make_policy
from foundry.sim.simulator import Instance, Simulator


class PlanDispatcher(Dispatcher):
    """Places each request where a fixed `DispatchPlan` says (requests named ``s<sample index>``)."""

    name = "plan"

    def __init__(self, plan: DispatchPlan) -> None:
        self.where = {f"s{s}": k for s, k in plan.instance_of().items()}

    def choose(self, seq: EngineSequence, cores: list[EngineCore]) -> int:
        return self.where[seq.request_id]


def deployment(cfg: PaperSimConfig, gpu: str | None = None) -> Deployment:
    return resolve_deployment(f"roofline:{gpu or cfg.gen_gpu}:{cfg.model}:tp{cfg.gen_tp}", num_host_blocks=0)


def simulate_generation(cfg: PaperSimConfig, plan: DispatchPlan, lengths: np.ndarray,
                        dep: Deployment) -> np.ndarray:
    """Every sample's finish time (s) when `plan` runs on the simulator, all prompts arriving at 0.
    The workload lists each instance's samples in admission order, so FCFS admits them in that order."""
    order = [s for inst in plan.instances for s in inst.order]
    specs = tuple(RequestSpec(0.0, cfg.prompt_len, int(lengths[s])) for s in order)
    instances = []
    for inst in plan.instances:
        sched = SchedulerConfig(policy="fcfs", max_num_seqs=inst.max_batch,
                                max_num_batched_tokens=cfg.max_num_batched_tokens)
        memory = BlockManager(dep.block_size, dep.num_device_blocks, 0)
        executor = CostModelExecutor(dep.cost_model, dep.kv_bytes_per_block, dep.link_bandwidth)
        instances.append(Instance(make_policy(sched, dep), memory, executor))
    result = Simulator(instances, PlanDispatcher(plan)).run(Workload("rl-iteration", specs),
                                                             [f"s{s}" for s in order])
    finish = np.zeros(len(lengths))
    for s, rec in zip(order, result.records, strict=True):
        if rec.error or rec.finish_time is None:
            raise RuntimeError(f"sample {s} did not finish: {rec.error}")
        finish[s] = rec.finish_time
    return finish


def typical_ptl(cfg: PaperSimConfig, dep: Deployment, history: np.ndarray) -> PerTokenLatency:
    """The PTL a profile would give at the token-weighted mean context of the history (where decode
    steps spend their time: a long sample's steps dominate)."""
    h = history.astype(float)
    context = cfg.prompt_len + float(np.sum(h * h) / (2 * np.sum(h)))
    return PerTokenLatency.from_cost_model(dep.cost_model, int(context))


@dataclass
class Generation:
    finish: np.ndarray  # per sample
    plan: DispatchPlan

    @property
    def seconds(self) -> float:
        return float(self.finish.max())


def plan_for(cfg: PaperSimConfig, method: Literal["random", "skew"], num_instances: int, batch: Batch,
             history: Batch, ptl: PerTokenLatency) -> DispatchPlan:
    if method == "random":
        return dispatch_random(cfg.num_samples, num_instances, cfg.max_batch, seed=cfg.seed,
                               groups=batch.groups.tolist())
    if cfg.oracle_ranker:
        return dispatch_skew(batch.lengths.tolist(), num_instances, ptl, cfg.max_batch, alpha=cfg.alpha,
                             groups=batch.groups.tolist())
    return dispatch_skew(batch.scores.tolist(), num_instances, ptl, cfg.max_batch, alpha=cfg.alpha,
                         history=history.lengths.tolist(), groups=batch.groups.tolist())


def generate(cfg: PaperSimConfig, method: Literal["random", "skew"], gen_gpus: int, batch: Batch,
             history: Batch, gpu: str | None = None) -> Generation:
    dep = deployment(cfg, gpu)
    ptl = typical_ptl(cfg, dep, history.lengths)
    plan = plan_for(cfg, method, gen_gpus // cfg.gen_tp, batch, history, ptl)
    return Generation(simulate_generation(cfg, plan, batch.lengths, dep), plan)


def longest_alone_seconds(cfg: PaperSimConfig, dep: Deployment, length: int) -> float:
    """≈ the longest sample decoding alone on an instance: no dispatch can finish generation sooner."""
    cm = dep.cost_model
    decode = sum(cm.decode_time(1, cfg.prompt_len + i) for i in range(1, length))
    return cm.prefill_time(cfg.prompt_len) + decode
