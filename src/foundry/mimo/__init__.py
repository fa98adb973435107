"""foundry.mimo: widely-linear precoding for massive MIMO under transmit IQ imbalance (arXiv 1702.08703).

Plain numpy functions over (batch, …) arrays, one idea per module: `channel`, `iq_imbalance`,
`real_valued`, `precoders`, `metrics`, `analysis`, and `sweep` (config, batched sweep, CSV/plot).
"""

from foundry.mimo.sweep import SweepConfig, run

__all__ = ["SweepConfig", "run"]
