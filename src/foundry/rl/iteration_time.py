"""Iteration time of an RL system from its generation stream and its trainer's speed. Torch-free.

Reference `rl.md` §2.2 (StreamRL Fig. 5) and §6. Input: when each unit of work (a GRPO group, streamed
whole) is ready, measured from the start of generation, and how long the trainer takes for it. The
trainer takes units in arrival order, a micro-batch of `micro_batch` units at a time, starting one
when all its units have arrived and the previous one is done (one optimizer step per iteration:
gradient accumulation over the micro-batches, so only the first micro-batch's wait is exposed).

- colocated: the same GPUs generate, switch, train, switch back: T_gen + T_train + switch;
- stream (StreamRL-Sync, dynamic-batch pipelining): training overlaps the stream; the next
  generation waits for the new weights (training end + weight transfer);
- async (one-step staleness): batch k+1 is generated while batch k trains, with the weights from
  the step before; the transfer overlaps training, so the steady state is max(T_gen, T_train).
"""

from __future__ import annotations

from collections.abc import Sequence


def stream_train_end(ready: Sequence[float], work: Sequence[float], micro_batch: int, *,
                     start: float = 0.0) -> float:
    """When a trainer free from `start` finishes every unit (ready at `ready[i]`, taking `work[i]`
    seconds), in arrival order, `micro_batch` units per step of gradient accumulation."""
    if micro_batch < 1:
        raise ValueError(f"micro_batch: must be >= 1, got {micro_batch}")
    if len(ready) != len(work):
        raise ValueError("ready, work: one entry per unit each")
    order = sorted(range(len(ready)), key=lambda i: ready[i])
    t = start
    for j in range(0, len(order), micro_batch):
        chunk = order[j:j + micro_batch]
        t = max(t, max(ready[i] for i in chunk)) + sum(work[i] for i in chunk)
    return t


def colocated_iteration(t_gen: float, t_train: float, switch: float) -> float:
    """All GPUs generate, then all train: nothing overlaps."""
    return t_gen + t_train + switch


def stream_iteration(ready: Sequence[float], work: Sequence[float], micro_batch: int,
                     weight_sync: float) -> float:
    """StreamRL-Sync: training starts on the first streamed micro-batch; generation of the next
    iteration starts once the trained weights have arrived."""
    return stream_train_end(ready, work, micro_batch) + weight_sync


def async_schedule(ready: Sequence[float], work: Sequence[float], micro_batch: int, weight_sync: float,
                   num_iterations: int) -> list[float]:
    """Training end times of batches 0..K-1 under one-step staleness, each batch alike.

    Batch k is generated with the weights from training batch k-2 (one step behind the trainer,
    which is on batch k-1 meanwhile), so generation k starts once generation k-1 is done and those
    weights have arrived; training k starts once training k-1 is done, on batch k's stream.
    """
    gen_len = max(ready, default=0.0)
    gen_end_prev, gen_start = 0.0, 0.0
    train_end: list[float] = []
    for k in range(num_iterations):
        weights_ready = train_end[k - 2] + weight_sync if k >= 2 else 0.0
        gen_start = max(gen_end_prev, weights_ready)
        gen_end_prev = gen_start + gen_len
        trainer_free = train_end[-1] if train_end else 0.0
        train_end.append(stream_train_end([gen_start + r for r in ready], work, micro_batch,
                                          start=trainer_free))
    return train_end


def async_iteration(ready: Sequence[float], work: Sequence[float], micro_batch: int, weight_sync: float,
                    num_iterations: int = 16) -> float:
    """Steady-state seconds per iteration: the mean step over the second half of `async_schedule`
    (every batch is alike, so the schedule settles into a short cycle after a few iterations)."""
    if num_iterations < 4:
        raise ValueError(f"num_iterations: need >= 4 to reach the steady state, got {num_iterations}")
    ends = async_schedule(ready, work, micro_batch, weight_sync, num_iterations)
    half = num_iterations // 2
    return (ends[-1] - ends[half - 1]) / (num_iterations - half)
