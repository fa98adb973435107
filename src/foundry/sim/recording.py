"""Record what the real engine ran: an observer reading the batch of every step it takes.

`StepRecorder` keeps, per step, the `BatchFeatures` of the decision (read before the engine advances
the requests' counts) and the `elapsed` the engine reported to the policy. Paired with the engine's
`iteration_records` (one per step, same order) this is the calibration data for the fitted cost
model, and the exact step times for `ReplayCostModel`. Torch-free: the engine is not imported.
"""

from __future__ import annotations

from foundry.serve.core import StepObserver, StepResult
from foundry.serve.memory_plan import MemoryPlan
from foundry.serve.policies.base import SchedulerOutput
from foundry.sim.batch import BatchFeatures, batch_features


class StepRecorder(StepObserver):
    def __init__(self) -> None:
        self.features: list[BatchFeatures] = []
        self.update_elapsed: list[float] = []
        self.steps: list[list[tuple[str, int]]] = []  # per step (request id, tokens)

    def decided(self, decision: SchedulerOutput) -> None:
        self.features.append(batch_features(decision))
        self.steps.append([(it.seq.request_id, it.num_tokens) for it in decision.scheduled])

    def step_ended(self, decision: SchedulerOutput, plan: MemoryPlan, result: StepResult) -> None:
        self.update_elapsed.append(result.elapsed)
