"""Generation latency under continuous batching: PTL(BS) and the makespan of one instance. Torch-free.

StreamRL's latency model (reference `rl.md` §2.4): a decode step at batch size BS takes PTL(BS), flat
while the step is memory-bound and rising once the batch's KV reads or FLOPs dominate. A sample of L
tokens running beside others costs L steps at whatever batch the instance runs at each step, so one
instance's makespan follows from PTL, the lengths, the admission order and the batch cap.

`PerTokenLatency` is built from measured points (the real controller profiles its engine workers) or
from a simulator cost model (paper scale). `instance_makespan` simulates one instance exactly;
`closed_form_latency` is the paper's estimate PTL(BS)·L_avg·⌈M/BS⌉, kept for comparison.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for typing: building from a cost model needs foundry.sim, the rest does not
    from foundry.sim.cost_models.base import CostModel

DEFAULT_PROFILE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _isotonic(values: list[float]) -> list[float]:
    """Pool adjacent violators: the closest non-decreasing sequence (least squares, equal weights).
    A measured profile is noisy, but a bigger batch never does less work, so PTL is monotone."""
    blocks: list[list[float]] = []  # [sum, count]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    out: list[float] = []
    for s, c in blocks:
        out.extend([s / c] * int(c))
    return out


class PerTokenLatency:
    """PTL(BS): seconds per decode step at batch size BS.

    Monotone piecewise-linear through the measured points (made non-decreasing by isotonic
    regression if the measurements are not), constant below the first point, and extended linearly
    past the last one with the last segment's slope (constant with one point).
    """

    def __init__(self, points: Mapping[int | float, float]) -> None:
        if not points:
            raise ValueError("points: need at least one (batch size -> seconds per step)")
        for b, s in points.items():
            if not (b > 0 and math.isfinite(b)):
                raise ValueError(f"points: batch sizes must be positive and finite, got {b}")
            if not (s > 0 and math.isfinite(s)):
                raise ValueError(f"points: step times must be positive and finite, got {s} at batch {b}")
        self.batches = [float(b) for b in sorted(points)]
        self.seconds = _isotonic([float(points[b]) for b in sorted(points)])

    @classmethod
    def from_cost_model(cls, cost_model: CostModel, context_len: int,
                        batches: Sequence[int] = DEFAULT_PROFILE_BATCHES) -> PerTokenLatency:
        """PTL from a simulator cost model (e.g. the roofline), every sequence at `context_len` tokens:
        what profiling an engine worker at that context would measure."""
        return cls({b: cost_model.decode_time(b, context_len) for b in batches})

    def __call__(self, batch: float) -> float:
        xs, ys = self.batches, self.seconds
        if batch <= xs[0] or len(xs) == 1:
            return ys[0] if batch <= xs[0] else ys[-1]
        if batch >= xs[-1]:
            slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
            return ys[-1] + slope * (batch - xs[-1])
        i = next(k for k in range(1, len(xs)) if batch <= xs[k])
        w = (batch - xs[i - 1]) / (xs[i] - xs[i - 1])
        return ys[i - 1] + w * (ys[i] - ys[i - 1])

    def as_dict(self) -> dict[float, float]:
        return dict(zip(self.batches, self.seconds, strict=True))


def instance_finish_times(lengths: Sequence[float], order: Sequence[int], max_batch: int,
                          ptl: PerTokenLatency) -> dict[int, float]:
    """When each sample of `order` finishes on one instance that admits them in that order, at most
    `max_batch` at a time, a finished sample's slot going to the next one; every step advances each
    running sample by one token and costs PTL(number running).

    Event-driven and exact: between two finishes the batch is constant, so the time jumps to the next
    finish. All running samples advance together, so each one's finish is fixed in "tokens since the
    start" (the step counter when it was admitted + its length): a heap of those.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch: must be >= 1, got {max_batch}")
    for i in order:
        if not lengths[i] >= 0:
            raise ValueError(f"lengths: must be >= 0, got {lengths[i]} for sample {i}")
    finish: dict[int, float] = {}
    running: list[tuple[float, int]] = []  # (step count at which it finishes, sample)
    steps, now, nxt = 0.0, 0.0, 0
    while nxt < len(order) or running:
        while nxt < len(order) and len(running) < max_batch:
            heapq.heappush(running, (steps + lengths[order[nxt]], order[nxt]))
            nxt += 1
        done_at = running[0][0]
        now += (done_at - steps) * ptl(len(running))
        steps = done_at
        while running and running[0][0] <= steps:
            finish[heapq.heappop(running)[1]] = now
    return finish


def instance_makespan(lengths: Sequence[float], order: Sequence[int], max_batch: int,
                      ptl: PerTokenLatency) -> float:
    """Seconds until the last sample of `order` finishes (0 for no samples); see `instance_finish_times`."""
    return max(instance_finish_times(lengths, order, max_batch, ptl).values(), default=0.0)


def closed_form_latency(num_samples: int, mean_length: float, max_batch: int, ptl: PerTokenLatency) -> float:
    """StreamRL's estimate PTL(BS)·L_avg·⌈M/BS⌉ with BS = min(max_batch, M): exact for equal lengths
    when BS divides M, an overestimate otherwise (the last wave runs at a smaller batch)."""
    if num_samples <= 0:
        return 0.0
    bs = min(max_batch, num_samples)
    return ptl(bs) * mean_length * math.ceil(num_samples / bs)
