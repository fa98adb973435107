"""The cost-model interface: a step's batch composition in, its duration (seconds) out."""

from __future__ import annotations

from abc import ABC, abstractmethod

from foundry.serve.profile import Profile
from foundry.sim.batch import BatchFeatures, decode_features, prefill_features

PROFILE_PREFILL_LENS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
PROFILE_DECODE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)


class CostModel(ABC):
    """Predicts how long one engine step takes. Subclasses are small and stateless after fitting."""

    name: str = "cost-model"

    @abstractmethod
    def predict(self, f: BatchFeatures) -> float:
        """Seconds for a step with this batch (0 for an empty batch)."""

    def prefill_time(self, prompt_len: int) -> float:
        return self.predict(prefill_features(prompt_len))

    def decode_time(self, batch_size: int, context_len: int) -> float:
        return self.predict(decode_features(batch_size, context_len))

    def to_profile(self, decode_context: int = 512) -> Profile:
        """The latency profile an MLFQ policy reads (skip-join levels, scaled quantum), from this model."""
        lens = list(PROFILE_PREFILL_LENS)
        batches = list(PROFILE_DECODE_BATCHES)
        return Profile(lens, [self.prefill_time(n) for n in lens], batches,
                       [self.decode_time(b, decode_context) for b in batches],
                       {"source": f"cost model {self.name}", "decode_context": decode_context})

    def describe(self) -> dict[str, object]:
        return {"name": self.name}
