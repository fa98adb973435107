"""Learning-rate schedule: linear warm-up then cosine decay (the reference's ``cosine`` with warm-up)."""

from __future__ import annotations

import math


def warmup_cosine(
    step: int, warmup_steps: int, max_steps: int, min_ratio: float = 0.0, time_fraction: float = 0.0
) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based).

    ``time_fraction`` is the share of a wall-time budget already used; the cosine follows
    whichever of steps and time runs out first, so a run cut short by its time budget on a busy
    machine still ends with a decayed learning rate.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = max((step - warmup_steps) / max(1, max_steps - warmup_steps), time_fraction)
    progress = min(1.0, progress)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
