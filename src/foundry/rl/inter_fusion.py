"""RLHFuse's inter-stage fusion: generation and inference overlapped on the generation instances. Torch-free.

Reference `rl.md` §3.2. Generation of a batch runs on N instances under continuous batching (the latency
model of `foundry.rl.latency`: a decode step at batch BS costs PTL(BS)). Then every sample needs its
inference (reference, reward and critic forwards, the actor's old log-probs): `infer_s_per_sample +
infer_s_per_token · tokens` instance-seconds, tokens = prompt + completion.

- **Without fusion** (RLHFuse-Base): inference starts when the last sample of the batch finishes, on
  all N instances at once.
- **With fusion at threshold R_t**: at the moment the unfinished samples fall below R_t · batch, they
  move to the m instances with the most remaining work (m = the smallest count that keeps every
  survivor instance's batch in the flat, memory-bound part of PTL and fits the survivors' KV), and the
  N − m freed instances start inference on the finished samples. A sample finishing later is inferred
  by whichever instance is free first; the survivor instances join once generation ends (or, with
  `survivors_join="own"`, each once its own generation ends).

Migration (KV transfer or re-prefill) costs `migrate_s_per_sample + migrate_s_per_token · context` per
sample. It is charged conservatively as a stall on both sides: the sender starts inference only after
sending, the receiver resumes decoding only after receiving (an RDMA transfer would overlap decoding).
Before the trigger nothing differs from the unfused run, so both share one generation simulation.

Inference is list-scheduled one sample at a time (the paper infers per sample on the freed instances):
samples in order of availability, each on the instance that can start it first.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from foundry.rl.latency import PerTokenLatency, instance_finish_times

DEFAULT_THRESHOLDS = (0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50)


@dataclass(frozen=True)
class FusionCosts:
    """What one sample costs besides decoding, and how the survivor instances are chosen."""

    infer_s_per_sample: float = 0.0  # fixed inference seconds per sample on one instance
    infer_s_per_token: float = 0.0  # inference seconds per token (prompt + completion) on one instance
    migrate_s_per_sample: float = 0.0  # fixed migration seconds per migrated sample
    migrate_s_per_token: float = 0.0  # migration seconds per context token (KV bytes / link, or re-prefill)
    prompt_len: int = 0  # prompt tokens per sample (context = prompt + generated)
    kv_capacity_tokens: float = math.inf  # KV tokens an instance can hold (survivors reserve prompt + length)
    flat_tolerance: float = 0.1  # "flat" PTL region: PTL(b) <= (1 + tolerance) · PTL(1)
    # when a survivor instance starts inference: "last" = when the batch's last sample ends (the paper's
    # description), "own" = when its own generation ends; freed instances infer from the trigger either way
    survivors_join: Literal["own", "last"] = "last"

    def infer_s(self, length: float) -> float:
        return self.infer_s_per_sample + self.infer_s_per_token * (self.prompt_len + length)

    def migrate_s(self, generated: float) -> float:
        return self.migrate_s_per_sample + self.migrate_s_per_token * (self.prompt_len + generated)


@dataclass(frozen=True)
class FusionResult:
    threshold: float  # R_t (0: no fusion)
    gen_end: float  # when the last sample finishes generating
    infer_end: float  # when the last inference finishes
    trigger: float | None  # when the survivors migrated (None: no fusion happened)
    survivors: int  # samples unfinished at the trigger
    num_kept: int  # m: instances that kept generating
    migrated: int  # samples that moved to another instance
    busy: tuple[float, ...]  # per instance: seconds generating, migrating or inferring

    @property
    def total(self) -> float:
        return self.infer_end


def flat_batch(ptl: PerTokenLatency, max_batch: int, tolerance: float) -> int:
    """The largest batch b <= max_batch with PTL(b) <= (1 + tolerance) · PTL(1): decode stays memory-bound."""
    limit = (1 + tolerance) * ptl(1)
    lo, hi = 1, max_batch  # PTL is monotone: binary search
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ptl(mid) <= limit else (lo, mid - 1)
    return lo


def num_survivor_instances(num_survivors: int, survivor_kv_tokens: float, num_instances: int,
                           ptl: PerTokenLatency, max_batch: int, costs: FusionCosts) -> int:
    """m: the fewest instances whose batches stay in the flat PTL region and whose KV holds the survivors
    (all N if none smaller does)."""
    b = flat_batch(ptl, max_batch, costs.flat_tolerance)
    for m in range(1, num_instances + 1):
        if math.ceil(num_survivors / m) <= b and survivor_kv_tokens <= m * costs.kv_capacity_tokens:
            return m
    return num_instances


def round_robin(num_samples: int, num_instances: int) -> list[list[int]]:
    """Sample i on instance i mod N, admitted in index order: a data-parallel split of a shuffled batch."""
    return [list(range(k, num_samples, num_instances)) for k in range(num_instances)]


def _progress_at(lengths: Sequence[float], order: Sequence[int], max_batch: int, ptl: PerTokenLatency,
                 t: float) -> dict[int, float]:
    """Tokens generated by time `t` of each sample of `order` not finished by then (0 if not admitted).
    The same event loop as `instance_finish_times`, stopped at `t` (progress is continuous, as there)."""
    running: list[tuple[float, int]] = []  # (step count at which it finishes, sample)
    start: dict[int, float] = {}
    steps, now, nxt = 0.0, 0.0, 0
    while nxt < len(order) or running:
        while nxt < len(order) and len(running) < max_batch:
            heapq.heappush(running, (steps + lengths[order[nxt]], order[nxt]))
            start[order[nxt]] = steps
            nxt += 1
        step_s = ptl(len(running))
        done_at = running[0][0]
        if now + (done_at - steps) * step_s > t:
            steps += (t - now) / step_s
            break
        now += (done_at - steps) * step_s
        steps = done_at
        while running and running[0][0] <= steps:
            heapq.heappop(running)
    out = {s: steps - start[s] for _, s in running}
    out.update({s: 0.0 for s in order[nxt:]})
    return out


def _list_schedule(free: list[float], jobs: list[tuple[float, float]], busy: list[float]) -> float:
    """Each job (available at, seconds), in order of availability, on the instance that can start it first
    (ties: lowest index). Updates `free` and `busy`; returns the last end (0 for no jobs)."""
    heap = [(f, k) for k, f in enumerate(free)]
    heapq.heapify(heap)
    end = 0.0
    for avail, dur in sorted(jobs):
        # the instance free earliest starts first unless several are free by `avail`: then the lowest index
        ready = []
        while heap and heap[0][0] <= avail:
            ready.append(heapq.heappop(heap))
        if ready:
            k = min(ready, key=lambda x: x[1])[1]
            for item in ready:
                if item[1] != k:
                    heapq.heappush(heap, item)
            t0 = avail
        else:
            t0, k = heapq.heappop(heap)
        free[k] = t0 + dur
        busy[k] += dur
        end = max(end, free[k])
        heapq.heappush(heap, (free[k], k))
    return end


@dataclass(frozen=True)
class _Generation:
    """The unfused generation of one batch: shared by every threshold."""

    lengths: tuple[float, ...]
    orders: tuple[tuple[int, ...], ...]
    finish: tuple[dict[int, float], ...]  # per instance

    @property
    def all_finish(self) -> list[float]:
        return sorted(t for f in self.finish for t in f.values())


def _generate(lengths: Sequence[float], orders: Sequence[Sequence[int]], max_batch: int,
              ptl: PerTokenLatency) -> _Generation:
    finish = tuple(instance_finish_times(lengths, o, max_batch, ptl) for o in orders)
    return _Generation(tuple(float(x) for x in lengths), tuple(tuple(o) for o in orders), finish)


def _unfused(gen: _Generation, costs: FusionCosts) -> FusionResult:
    n = len(gen.orders)
    gen_end = max(gen.all_finish, default=0.0)
    busy = [max(f.values(), default=0.0) for f in gen.finish]
    jobs = [(gen_end, costs.infer_s(x)) for x in gen.lengths]
    end = _list_schedule([gen_end] * n, jobs, busy)
    return FusionResult(0.0, gen_end, max(end, gen_end), None, 0, n, 0, tuple(busy))


def _fused(gen: _Generation, threshold: float, ptl: PerTokenLatency, max_batch: int,
           costs: FusionCosts) -> FusionResult:
    n_inst, n = len(gen.orders), len(gen.lengths)
    times = gen.all_finish
    # the trigger: the first finish after which fewer than R_t · n samples are unfinished
    k = next((i + 1 for i in range(n) if n - (i + 1) < threshold * n), None)
    if threshold <= 0 or k is None or k >= n:
        return _unfused(gen, costs)
    trigger = times[k - 1]
    progress = [_progress_at(gen.lengths, o, max_batch, ptl, trigger) for o in gen.orders]
    remaining = [sum(gen.lengths[s] - g for s, g in p.items()) for p in progress]
    survivors = sum(len(p) for p in progress)
    kv = sum(costs.prompt_len + gen.lengths[s] for p in progress for s in p)
    m = num_survivor_instances(survivors, kv, n_inst, ptl, max_batch, costs)
    # keep the m instances with the most remaining work: the fewest tokens of progress to move
    kept = sorted(range(n_inst), key=lambda i: (-remaining[i], i))[:m]
    moving = sorted(((gen.lengths[s] - g, s, g) for i in range(n_inst) if i not in kept
                     for s, g in progress[i].items()), reverse=True)
    # spread the movers by count (longest first, ties to the least remaining work): batches stay flat
    count = {i: len(progress[i]) for i in kept}
    work = {i: remaining[i] for i in kept}
    incoming: dict[int, list[tuple[int, float]]] = {i: [] for i in kept}
    sent = [0.0] * n_inst
    for rem, s, g in moving:
        i = min(kept, key=lambda j: (count[j], work[j], j))
        count[i] += 1
        work[i] += rem
        incoming[i].append((s, g))
        sent[next(j for j in range(n_inst) if s in progress[j])] += costs.migrate_s(g)

    busy = [0.0] * n_inst
    free = [0.0] * n_inst
    jobs: list[tuple[float, float]] = []
    for i in range(n_inst):
        done_before = [(t, s) for s, t in gen.finish[i].items() if t <= trigger]
        jobs += [(trigger, costs.infer_s(gen.lengths[s])) for _, s in done_before]
        if i in kept:
            continue
        free[i] = trigger + sent[i]
        # generating until the trigger if it still had samples, else until its last one; then sending
        busy[i] = (trigger if progress[i] else max((t for t, _ in done_before), default=0.0)) + sent[i]
    gen_end = 0.0
    for i in kept:
        resume = trigger + sum(costs.migrate_s(g) for _, g in incoming[i])
        # running samples first (already admitted), then the migrated ones, then those never admitted
        own = sorted(progress[i], key=lambda s: (progress[i][s] == 0.0, gen.orders[i].index(s)))
        order = ([s for s in own if progress[i][s] > 0] + [s for s, g in incoming[i] if g > 0]
                 + [s for s, g in incoming[i] if g == 0] + [s for s in own if progress[i][s] == 0])
        prog = {**progress[i], **dict(incoming[i])}
        rest = {s: gen.lengths[s] - prog[s] for s in order}
        fin = instance_finish_times(rest, order, max_batch, ptl) if order else {}
        end_i = resume + max(fin.values(), default=0.0)
        jobs += [(resume + t, costs.infer_s(gen.lengths[s])) for s, t in fin.items()]
        free[i] = end_i
        busy[i] = end_i
        gen_end = max(gen_end, end_i)
    if costs.survivors_join == "last":
        for i in kept:
            free[i] = gen_end
    end = _list_schedule(free, jobs, busy)
    return FusionResult(threshold, gen_end, max(end, gen_end), trigger, survivors, m, len(moving),
                        tuple(busy))


def simulate_fusion(lengths: Sequence[float], num_instances: int, ptl: PerTokenLatency, max_batch: int,
                    threshold: float, costs: FusionCosts | None = None,
                    orders: Sequence[Sequence[int]] | None = None) -> FusionResult:
    """Generation + inference of one batch with explicit output `lengths` on `num_instances` instances,
    fused at `threshold` (R_t as a fraction of the batch; 0 = RLHFuse-Base). `orders`: each instance's
    samples in admission order (default `round_robin`)."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold: must be in [0, 1], got {threshold}")
    if num_instances < 1:
        raise ValueError(f"num_instances: must be >= 1, got {num_instances}")
    costs = costs or FusionCosts()
    orders = orders if orders is not None else round_robin(len(lengths), num_instances)
    if len(orders) != num_instances:
        raise ValueError(f"orders: need {num_instances} instances, got {len(orders)}")
    gen = _generate(lengths, orders, max_batch, ptl)
    return _fused(gen, threshold, ptl, max_batch, costs)


def sweep_thresholds(lengths: Sequence[float], num_instances: int, ptl: PerTokenLatency, max_batch: int,
                     costs: FusionCosts | None = None, candidates: Sequence[float] = DEFAULT_THRESHOLDS,
                     orders: Sequence[Sequence[int]] | None = None) -> list[FusionResult]:
    """`simulate_fusion` at every candidate threshold on one batch (its generation simulated once)."""
    costs = costs or FusionCosts()
    orders = orders if orders is not None else round_robin(len(lengths), num_instances)
    gen = _generate(lengths, orders, max_batch, ptl)
    return [_fused(gen, t, ptl, max_batch, costs) for t in candidates]


def expected_totals(history_lengths: Sequence[float], num_instances: int, ptl: PerTokenLatency,
                    max_batch: int, costs: FusionCosts | None = None,
                    candidates: Sequence[float] = DEFAULT_THRESHOLDS, *, batch_size: int | None = None,
                    num_draws: int = 8, seed: int = 0) -> list[float]:
    """Mean gen+inference time per candidate over `num_draws` batches bootstrapped from the history
    (the same batches for every candidate, so differences are not sampling noise)."""
    if len(history_lengths) == 0:
        raise ValueError("history_lengths: need at least one length")
    rng = np.random.default_rng(seed)
    hist = np.asarray(history_lengths, dtype=float)
    size = batch_size or len(hist)
    totals = np.zeros(len(candidates))
    for _ in range(num_draws):
        batch = rng.choice(hist, size=size, replace=True).tolist()
        res = sweep_thresholds(batch, num_instances, ptl, max_batch, costs, candidates)
        totals += [r.total for r in res]
    return (totals / num_draws).tolist()


def choose_threshold(history_lengths: Sequence[float], num_instances: int, ptl: PerTokenLatency,
                     max_batch: int, infer_s_per_sample: float, migrate_s_per_sample: float,
                     candidates: Sequence[float] = DEFAULT_THRESHOLDS, *, costs: FusionCosts | None = None,
                     batch_size: int | None = None, num_draws: int = 8, seed: int = 0) -> float:
    """R_t by offline simulation of the length history (reference §3.2): the candidate with the least
    mean gen+inference time over bootstrapped batches (ties: the smallest threshold, which migrates
    least). `costs`, if given, adds per-token terms, the prompt length, KV capacity and flat tolerance;
    its per-sample costs are replaced by the two arguments."""
    costs = replace(costs or FusionCosts(), infer_s_per_sample=infer_s_per_sample,
                    migrate_s_per_sample=migrate_s_per_sample)
    totals = expected_totals(history_lengths, num_instances, ptl, max_batch, costs, candidates,
                             batch_size=batch_size, num_draws=num_draws, seed=seed)
    best = min(range(len(candidates)), key=lambda i: (totals[i], candidates[i]))
    return float(candidates[best])
