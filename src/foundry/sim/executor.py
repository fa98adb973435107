"""The cost-model executor: what the engine's `ModelExecutor` is to the engine, with no tensors.

The simulator's `EngineCore` calls it each step. It asks the cost model how long the batch takes, and
adds the time to move the step's swapped blocks over the host link (bytes / bandwidth). The core has
already applied the decision to the block manager (`memory_plan.apply_decision`), so the device and
host pools are tracked by the same accounting objects as in the engine; here they only cost time.
Its tokens are placeholders (the core emits 0): lengths, not text, are simulated.
"""

from __future__ import annotations

from foundry.serve.core import StepResult
from foundry.serve.memory_plan import MemoryPlan
from foundry.serve.policies.base import SchedulerOutput
from foundry.sim.batch import batch_features
from foundry.sim.cost_models.base import CostModel


class CostModelExecutor:
    """`overlap_swap=True` hides swap traffic behind compute (FastServe's pipelined swapping)."""

    def __init__(self, cost_model: CostModel, kv_bytes_per_block: float, link_bandwidth: float,
                 overlap_swap: bool = False) -> None:
        if not link_bandwidth > 0:
            raise ValueError(f"link_bandwidth: must be > 0 bytes/s, got {link_bandwidth}")
        if kv_bytes_per_block < 0:
            raise ValueError(f"kv_bytes_per_block: must be >= 0, got {kv_bytes_per_block}")
        self.cost_model = cost_model
        self.seconds_per_block = kv_bytes_per_block / link_bandwidth
        self.overlap_swap = overlap_swap
        self.compute_time = 0.0
        self.swap_time = 0.0

    def execute(self, decision: SchedulerOutput, plan: MemoryPlan, now: float) -> StepResult:
        compute = self.cost_model.predict(batch_features(decision))
        swap = (len(plan.swap_out) + len(plan.swap_in)) * self.seconds_per_block
        self.compute_time += compute
        self.swap_time += swap
        elapsed = max(compute, swap) if self.overlap_swap else compute + swap
        return StepResult(now + elapsed, elapsed, None)
