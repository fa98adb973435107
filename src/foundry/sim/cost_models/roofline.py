"""A roofline step-time model from a GPU spec and a model shape: no profile needed.

A step is bound by compute or by memory traffic, whichever is slower, plus a fixed per-step overhead:

    FLOPs = 2·P·T + 4·L·H·d·pairs      (T tokens through the weights; pairs = query-key pairs attended)
    bytes = weights + KV read by decodes (Σ context) + KV written (T tokens)
    t     = max(FLOPs / (peak·mfu), bytes / (bandwidth·mbu)) + overhead

with P parameters, L layers, H query heads of size d, and pairs = Σ n·c + n(n+1)/2 per request. The
efficiencies are assumptions, not measurements: mfu 0.6 (large GEMMs reach 60-80% of peak), mbu 0.7,
overhead 2 ms (kernel launches, scheduling). `docs/sim.md` compares it with DistServe's measured fit.
Tensor parallelism divides compute and traffic by `tp`, with no communication cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from foundry.sim.batch import BatchFeatures
from foundry.sim.cost_models.base import CostModel
from foundry.sim.hardware import GPUSpec, ModelSpec


@dataclass
class RooflineCostModel(CostModel):
    gpu: GPUSpec
    model: ModelSpec
    tp: int = 1
    mfu: float = 0.6
    mbu: float = 0.7
    overhead_s: float = 0.002

    def __post_init__(self) -> None:
        if self.tp < 1:
            raise ValueError(f"tp: must be >= 1, got {self.tp}")
        for label, v in (("mfu", self.mfu), ("mbu", self.mbu)):
            if not 0 < v <= 1:
                raise ValueError(f"{label}: must be in (0, 1], got {v}")
        self.name = f"roofline:{self.gpu.name}:{self.model.name}" + (f":tp{self.tp}" if self.tp > 1 else "")

    def predict(self, f: BatchFeatures) -> float:
        if f.is_empty:
            return 0.0
        m = self.model
        tokens = f.sum_prefill_tokens + f.num_decode_seqs
        # prefill: Σ (n² + 2nc)/2 ≈ Σ n·c + n²/2 pairs; decode: c + 1 keys each
        pairs = f.sum_prefill_sq / 2 + f.sum_decode_context
        flops = 2 * m.num_params * tokens + 4 * m.num_layers * m.num_heads * m.head_dim * pairs
        # KV traffic: decodes read their cached context; every new token's K/V is written once
        traffic = m.weight_bytes + (f.sum_decode_context + tokens) * m.kv_bytes_per_token
        compute = flops / (self.tp * self.gpu.peak_flops * self.mfu)
        memory = traffic / (self.tp * self.gpu.mem_bandwidth * self.mbu)
        return max(compute, memory) + self.overhead_s

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "tp": self.tp, "mfu": self.mfu, "mbu": self.mbu,
                "overhead_s": self.overhead_s}
