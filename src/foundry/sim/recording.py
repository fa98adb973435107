"""Record what the real engine ran: wrap its policy, read the batch of every decision it makes.

`RecordingPolicy(inner)` delegates everything to `inner` and keeps, per step, the `BatchFeatures` of
the decision and the `elapsed` the engine reported to the policy. Paired with the engine's
`iteration_records` (one per step, same order) this is the calibration data for the fitted cost
model, and the exact step times for `ReplayCostModel`. Torch-free: the engine is not imported.
"""

from __future__ import annotations

from foundry.serve.block_manager import BlockManager
from foundry.serve.policies.base import Policy, SchedulerOutput
from foundry.serve.sequence import Sequence
from foundry.sim.batch import BatchFeatures, batch_features


class RecordingPolicy(Policy):
    def __init__(self, inner: Policy) -> None:
        super().__init__(inner.max_num_seqs, inner.max_num_batched_tokens)
        self.inner = inner
        self.name = inner.name
        self.features: list[BatchFeatures] = []
        self.update_elapsed: list[float] = []
        self.steps: list[list[tuple[str, int]]] = []  # per step (request id, tokens)

    def add(self, seq: Sequence, now: float) -> None:
        self.inner.add(seq, now)

    def remove(self, seq: Sequence) -> None:
        self.inner.remove(seq)

    def schedule(self, now: float, memory: BlockManager) -> SchedulerOutput:
        out = self.inner.schedule(now, memory)
        self.features.append(batch_features(out))  # before the engine advances the counts
        self.steps.append([(it.seq.request_id, it.num_tokens) for it in out.scheduled])
        return out

    def update(self, output: SchedulerOutput, now: float, elapsed: float) -> None:
        self.update_elapsed.append(elapsed)
        self.inner.update(output, now, elapsed)

    def stats(self) -> dict[str, object]:
        return self.inner.stats()
