"""Replay measured step times in order: the exact cost model for a trace already run on the engine.

With it the simulator's clock follows the engine's step by step, so any difference in the schedule is
a difference in the loop, not in the cost model (the engine-vs-simulator schedule test uses it).
"""

from __future__ import annotations

from collections.abc import Sequence

from foundry.sim.batch import BatchFeatures
from foundry.sim.cost_models.base import CostModel


class ReplayCostModel(CostModel):
    name = "replay"

    def __init__(self, times: Sequence[float]) -> None:
        self.times = list(times)
        self.next = 0

    def predict(self, f: BatchFeatures) -> float:
        if self.next >= len(self.times):
            raise RuntimeError(f"replay: the simulation ran more than the {len(self.times)} recorded steps")
        t = self.times[self.next]
        self.next += 1
        return t
