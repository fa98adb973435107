"""Elastic schedulers: LoongServe's ESP scheduler and a static sequence-parallel baseline. Torch-free.

A scheduler turns a `ClusterView` into an `IterationPlan`; the driver (the engine, or the
simulator on a virtual clock) applies it in the order `validate.py` states, runs the batches, and
asks again whenever a batch ends or a request arrives. The scheduler never reads a clock (time is
``view.now``), never sees a request's true output length (only ``max_tokens`` and what was
generated so far; `observe_finished` reports lengths of finished requests, for running means), and
never mutates the placement.

Driver conventions the schedulers rely on: a batch runs on idle instances only, so the KV of a
request in a running batch lives on that batch's instances; a request is decoded by a batch that
includes every instance holding part of its KV; a paused request's KV is dropped and it comes back
through the waiting queue with ``prompt_len`` = tokens to recompute and ``max_tokens`` = what is
left of its cap. Requests whose ``prompt_len + max_tokens`` exceeds the capacity they could ever
get (the cluster for LoongServe, one group for static SP) are never admitted: drivers should reject
them on arrival.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from foundry.serve.elastic.batching import batch_prefills
from foundry.serve.elastic.cost_model import ESPCostModel
from foundry.serve.elastic.placement import KVRange, Placement, split_by_capacity
from foundry.serve.elastic.plan import (
    ClusterView,
    DecodeBatch,
    IterationPlan,
    Migration,
    PrefillBatch,
    WaitingRequest,
)


class ElasticScheduler(ABC):
    """Decides one iteration of an elastic cluster from a read-only view."""

    @abstractmethod
    def schedule(self, view: ClusterView) -> IterationPlan: ...

    def observe_finished(self, request_id: str, num_generated: int) -> None:
        """The driver reports a finished request and its output length (default: ignored)."""
        return None


@dataclass(frozen=True, slots=True)
class LoongServeConfig:
    """LoongServe's scheduler knobs; defaults from its artifact evaluation (serving.md §3.4–3.5)."""

    max_wait_tokens: int = 10  # decode iterations between prefill rounds while decoding (Step 0)
    batch_max_tokens: int = 500_000  # prompt tokens admitted per round (AE)
    max_prefill_time: float = 5.0  # seconds; a round's prefill may exceed it only for its first request
    max_num_ooe: int = 1  # consecutive out-of-order admissions (AE: ShareGPT 1, LEval/LV-Eval 8, Mixed 4)
    min_comp_bound_decoding_batch_size: int = 128  # queries per decode master before spreading (AE)
    avg_decode_time: float = 0.025  # seconds, LoongServe's constant decode time (AE 25 ms)
    initial_mean_output_len: float = 512.0  # the running mean output length starts here
    max_num_seqs: int = 1024  # requests in the system (LoongServe's running_max_req_size)
    dp_exact_max_requests: int = 256  # above this, the batching DP uses LoongServe's pruning (one batch)
    # admission assumes each request generates at most max(this, 1.1 × generated) tokens (capped by its
    # max_tokens), as LightLLM's router_max_new_token_len when not busy; None: the worst case, max_tokens
    admission_max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if min(self.max_wait_tokens, self.max_num_ooe) < 0 or min(
                self.batch_max_tokens, self.min_comp_bound_decoding_batch_size, self.max_num_seqs) < 1:
            raise ValueError(f"LoongServeConfig: counts must be positive: {self}")
        if self.max_prefill_time <= 0 or self.avg_decode_time <= 0 or self.initial_mean_output_len <= 0:
            raise ValueError(f"LoongServeConfig: times and lengths must be positive: {self}")


# -- small pieces both schedulers use -------------------------------------------------------------
@dataclass
class _Group:
    """Running requests whose KV shares instances: they can only decode together."""

    requests: list[str]
    instances: set[int]


def _groups(request_ids: Iterable[str], p: Placement) -> list[_Group]:
    """Connected components of requests linked by the instances holding their KV."""
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rids = [r for r in request_ids if p.holders(r)]
    for r in rids:
        hs = p.holders(r)
        for h in hs[1:]:
            parent[find(h)] = find(hs[0])
    by_root: dict[int, _Group] = {}
    for r in rids:
        g = by_root.setdefault(find(p.holders(r)[0]), _Group([], set()))
        g.requests.append(r)
        g.instances.update(p.holders(r))
    return list(by_root.values())


def _worst_case_fits(entries: list[tuple[int, int]], capacity: int) -> bool:
    """LightLLM-style admission: with (context, tokens left) per request, sorted by tokens left
    descending, the peak KV while all run to their caps is max_i (left_i·(i+1) + Σ_{≤i} context)."""
    if sum(c + n for c, n in entries) <= capacity:  # the peak never exceeds Σ context + Σ left
        return True
    peak, acc = 0, 0
    for n, (ctx, left) in enumerate(sorted(entries, key=lambda e: -e[1]), start=1):
        acc += ctx
        peak = max(peak, left * n + acc)
    return peak <= capacity


class _PeakCheck:
    """`_worst_case_fits(entries + new, capacity)` for fixed `entries` and a few `new` ones: `entries`
    sorted once (the peak does not depend on the order of entries with equal tokens left)."""

    def __init__(self, entries: list[tuple[int, int]], capacity: int) -> None:
        self.entries = entries
        self.capacity = capacity
        self._sorted: list[tuple[int, int]] | None = None

    def fits(self, new: list[tuple[int, int]]) -> bool:
        if self._sorted is None:
            self._sorted = sorted(self.entries, key=lambda e: -e[1])
        merged = sorted(self._sorted + new, key=lambda e: -e[1]) if new else self._sorted
        acc, cap = 0, self.capacity
        for n, (ctx, left) in enumerate(merged, start=1):
            acc += ctx
            if left * n + acc > cap:
                return False
        return True


class _Skipper:
    """Dispatch's scan over a long waiting queue, with numpy: the next request that is not sure to fail
    the way the current one did, with nothing changed (prompt over `max_prompt`, or KV admission failed
    alone by dominating a recorded failure)."""

    def __init__(self, prompts: np.ndarray, lefts: np.ndarray) -> None:
        self.prompts, self.lefts = prompts, lefts
        self.need = prompts + lefts
        self.dominated = np.zeros(len(prompts), bool)
        self.num_failed = 0
        self.key: tuple[int, int, int] | None = None
        self.candidates = np.zeros(0, np.int64)

    def next(self, i: int, room: int, max_prompt: int, failed: list[tuple[int, int]]) -> int:
        """The first index after `i` of a request that may get further (len(prompts) if none): its
        prompt is at most `max_prompt`, and its prompt + tokens left fit `room` or it dominates no
        (prompt, left) pair in `failed`."""
        for fn, fl in failed[self.num_failed:]:
            self.dominated |= (self.prompts >= fn) & (self.lefts >= fl)
        key = (room, max_prompt, len(failed))
        if key != self.key:
            may_pass = (self.prompts <= max_prompt) & ((self.need <= room) | ~self.dominated)
            self.candidates = np.flatnonzero(may_pass)
            self.key, self.num_failed = key, len(failed)
        k = int(np.searchsorted(self.candidates, i, side="right"))
        return int(self.candidates[k]) if k < len(self.candidates) else len(self.prompts)


def _kv_ok(check: _PeakCheck, total: int, new: list[tuple[int, int]], more: list[tuple[int, int]] | None,
           n: int, left: int, failed: list[tuple[int, int]]) -> bool:
    """Worst-case KV admission of one more request (prompt `n`, `left` tokens reserved) beside the
    entries of `check`, `new` and `more`, whose Σ(context + left) is `total`. A failure is recorded in
    `failed`; a request dominating a recorded failure fails at once."""
    if total + n + left <= check.capacity:  # the peak never exceeds Σ context + Σ left
        return True
    for fn, fl in failed:
        if n >= fn and left >= fl:
            return False
    if check.fits([*new, *(more or ()), (n, left)]):
        return True
    failed.append((n, left))
    return False


def _assumed_left(max_tokens_left: int, generated: int, assume: int | None) -> int:
    """Output tokens admission reserves for a request: what is left of its cap, or, optimistically,
    up to max(`assume`, 1.1 × generated) in all."""
    if assume is None:
        return max_tokens_left
    return max(min(max_tokens_left, max(assume, math.ceil(1.1 * generated)) - generated), 0)


def _free(p: Placement, instances: Iterable[int]) -> int:
    return sum(p.free(i) for i in instances)


def _assign_masters(requests: list[str], instances: Iterable[int], p: Placement,
                    min_batch: int) -> dict[str, int]:
    """New tokens' KV: instances with the most free slots first, each taking a sub-batch of
    min(remaining, free, max(remaining / instances left, min_batch)) (LoongServe, Step 4)."""
    cands = sorted((i for i in instances if p.free(i) > 0), key=lambda i: (-p.free(i), i))
    took = dict.fromkeys(cands, 0)
    rem = len(requests)
    for n, i in enumerate(cands):
        took[i] = min(rem, p.free(i), max(math.ceil(rem / (len(cands) - n)), min_batch))
        rem -= took[i]
    for i in cands:  # a fuller instance took less than its share: the roomier ones take the rest
        more = min(rem, p.free(i) - took[i])
        took[i] += more
        rem -= more
    if rem > 0:
        raise AssertionError("decode planned without enough free slots")  # callers check first
    out: dict[str, int] = {}
    it = iter(requests)
    for i in cands:
        for _ in range(took[i]):
            out[next(it)] = i
    return out


# -- LoongServe -----------------------------------------------------------------------------------
class LoongServeScheduler(ElasticScheduler):
    """LoongServe's scheduler (serving.md §3.4), one call per iteration boundary.

    Step 0: consider new prefills only when the idle instances have nothing to decode, or after
    ``max_wait_tokens`` decode iterations since the last prefill round. Step 1 dispatches a FCFS
    prefix of the waiting queue (worst-case memory admission against the whole cluster, the
    waiting estimate W, accepted/undecided requests, out-of-order admission). Step 2 makes room:
    migrate KV off the least-loaded idle instances while the prefill speed-up beats the migration
    time, preempt the decode groups with the most idle slots when the prompts need their slots,
    and lend a decode group's instances when the prefill speed-up beats the decode slow-down.
    Step 3 batches the prompts with the DP of `batching.py` over the lent and free instances and
    places each prompt's KV on the most-used instances first. Step 4 decodes every other group
    (multi-master; new tokens on instances with free slots, scaling up onto extra instances or
    merging groups when short, pausing the newest request as the last resort).

    Adapted to an event-driven cluster (batches end at different times; LoongServe runs
    synchronous macro-iterations): the "cluster" of Steps 1–2 is the idle instances, "idle" in
    Step 0 means that no request on the idle instances can decode, and a decode batch is a
    connected group of requests sharing KV holders. Left out: greedy prefill fill-ins on
    instances freed by scale-down within the rest of a macro-iteration (the view carries no batch
    end times; freed instances are simply idle at the next call), adding decode instances when a
    master's sub-batch exceeds the compute-bound size, and LightLLM's busy/not-busy switch of the
    admission estimate (`admission_max_new_tokens` is a fixed optimistic cap instead).
    """

    def __init__(self, cost: ESPCostModel, config: LoongServeConfig | None = None) -> None:
        self.cost = cost
        self.config = config or LoongServeConfig()
        self._sum_output = self.config.initial_mean_output_len  # LoongServe starts the mean at 512/1
        self._num_finished = 1
        self._num_ooe = 0
        self._decodes_since_prefill: dict[str, int] = {}
        self._left: dict[str, int] = {}  # request id → output tokens left to its cap
        self._gen: dict[str, int] = {}  # request id → tokens generated so far
        self._prompt: dict[str, int] = {}  # request id → prompt tokens (while its prefill runs)
        self._clamped: dict[int, int | None] = {}  # ring size → the fitted degree `_t` uses
        self._arrays_of: tuple[WaitingRequest, ...] | None = None
        self._arrays: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))

    # -- bookkeeping ------------------------------------------------------------------------------
    def observe_finished(self, request_id: str, num_generated: int) -> None:
        self._sum_output += num_generated
        self._num_finished += 1

    @property
    def mean_output_len(self) -> float:
        return self._sum_output / self._num_finished

    def _remember(self, view: ClusterView) -> None:
        for r in view.running:
            self._left[r.request_id] = max(r.max_tokens - r.num_generated, 0)
            self._gen[r.request_id] = r.num_generated
        live = set(view.placement) | set(view.busy_requests) | {r.request_id for r in view.running}
        for d in (self._left, self._gen, self._prompt, self._decodes_since_prefill):
            for rid in [r for r in d if r not in live]:
                del d[rid]

    def _t(self, k: int, sum_len: int, sum_sq: int) -> float:
        """T_k, with k clamped to the largest fitted degree ≤ k (infinite with no instance)."""
        d = self._clamped.get(k, -1)
        if d == -1:
            fitted = [d for d in self.cost.degrees if d <= k]
            d = self._clamped[k] = fitted[-1] if fitted else None
        return self.cost.prefill_time(d, sum_len, sum_sq) if d is not None else math.inf

    def _t_exact(self, k: int, sum_len: int, sum_sq: int) -> float:
        return self.cost.prefill_time(k, sum_len, sum_sq) if k in self.cost.prefill else math.inf

    # -- one iteration ----------------------------------------------------------------------------
    def schedule(self, view: ClusterView) -> IterationPlan:
        self._remember(view)
        p = view.placement  # read-only: whatever changes it (migrations, pauses) works on a copy
        idle, busy = view.idle, view.busy_requests
        decodable = [rid for r in view.running
                     if (rid := r.request_id) not in busy and (hs := p.holders(rid)) and idle.issuperset(hs)]
        groups = _groups(decodable, p)
        waited = max(self._decodes_since_prefill.values(), default=0)
        if view.waiting and view.idle and (not groups or waited >= self.config.max_wait_tokens):
            accepted = self._dispatch(view, p)
            if accepted:
                # (if no prompt fits, the decodes below plan on the placement as it is: the round's
                # migrations are not part of that plan)
                plan, _ = self._prefill_round(view, p, accepted, decodable)
                if plan is not None:
                    self._decodes_since_prefill.clear()
                    by_id = {w.request_id: w for w in accepted}
                    for b in plan.prefills:
                        for rid in b.request_ids:
                            w = by_id[rid]
                            self._prompt[rid], self._left[rid], self._gen[rid] = w.prompt_len, w.max_tokens, 0
                    self._count_decodes(plan.decodes)
                    return plan
        extras = [i for i in sorted(view.idle) if not any(i in g.instances for g in groups)]
        planned = self._plan_decodes(view, p, groups, extras, allow_pause=True)
        assert planned is not None
        decodes, paused = planned
        self._count_decodes(decodes)
        return IterationPlan(decodes=tuple(decodes), paused=tuple(paused))

    def _count_decodes(self, decodes: Iterable[DecodeBatch]) -> None:
        for b in decodes:
            for rid in b.request_ids:
                self._decodes_since_prefill[rid] = self._decodes_since_prefill.get(rid, 0) + 1

    # -- Step 1: dispatch -------------------------------------------------------------------------
    def _dispatch(self, view: ClusterView, p: Placement) -> list[WaitingRequest]:
        cfg = self.config
        in_system = set(p) | set(view.busy_requests) | {r.request_id for r in view.running}
        if not view.waiting or len(in_system) + 1 > cfg.max_num_seqs:
            return []  # (the loop below would accept nothing and leave the out-of-order count as it is)
        assume = cfg.admission_max_new_tokens
        lefts, gens, prompts = self._left, self._gen, self._prompt
        if assume is None:
            entries = [(p.length(r) if r in p else prompts.get(r, 0), lefts.get(r, 0)) for r in in_system]
        else:
            entries = [(p.length(r) if r in p else prompts.get(r, 0),
                        _assumed_left(lefts.get(r, 0), gens.get(r, 0), assume)) for r in in_system]
        capacity = sum(p.capacities)
        decoding = [self._gen[r] for r in in_system if self._gen.get(r, 0) >= 1]
        # max(10, max over g of max(mean − g, 0.1·g)), from the extremes (both terms are monotone in g)
        iters = max(10.0, self.mean_output_len - min(decoding), 0.1 * max(decoding)) if decoding else 10.0
        wait_est = cfg.avg_decode_time * iters  # W
        inv_decode = sum(1.0 / g for g in decoding)
        pool = sorted(view.idle)
        pool_used = sum(p.used(i) for i in pool)
        caps = sorted((p.capacities[i] for i in pool), reverse=True)
        min_busy = next(n for n in range(len(caps) + 1) if sum(caps[:n]) >= pool_used)
        max_idle = len(pool) - min_busy
        isolated_tokens = sum(caps[min_busy:])  # the smallest instances, as if emptied by migration
        batch_max = min(cfg.batch_max_tokens, _free(p, pool))
        allow_ooe = self._num_ooe < cfg.max_num_ooe

        accepted: list[WaitingRequest] = []
        undecided: list[WaitingRequest] = []
        s = s2 = us = us2 = 0
        u_inv = 0.0
        can_undecide, run_idx, need_break, is_ooe, before_ooe = True, 0, False, False, 0

        base_total = sum(c + n for c, n in entries)
        n_in = len(in_system)
        fits = _PeakCheck(entries, capacity)
        acc_new: list[tuple[int, int]] = []  # admission entries of `accepted`, of `undecided`
        und_new: list[tuple[int, int]] = []
        acc_total = und_total = 0
        # KV admission fails for a request whenever it failed for one with no more prompt and no more
        # tokens left (the peak is monotone in each entry), and stays failed as requests are added:
        # the (prompt, left) pairs that failed, per check (alone, and with the undecided ones)
        failed_alone: list[tuple[int, int]] = []
        failed_with_undecided: list[tuple[int, int]] = []

        waiting = view.waiting
        skip: _Skipper | None = None
        i = -1
        while i + 1 < len(waiting):
            i += 1
            w = waiting[i]
            n = w.prompt_len
            left = _assumed_left(w.max_tokens, 0, assume)
            if n_in + len(accepted) + 1 > cfg.max_num_seqs:
                # the count check fails for this and every later request (nothing more is accepted):
                # one pass of the failure branch below, after which the others would change nothing
                if allow_ooe and not need_break and not is_ooe:
                    before_ooe, is_ooe = len(accepted), True
                break
            if (_kv_ok(fits, base_total + acc_total, acc_new, None, n, left, failed_alone)
                    and s + n <= batch_max):
                if (not undecided or allow_ooe) and s + n <= isolated_tokens:
                    cur = self._t(max_idle, s + n, s2 + n * n)
                    best = self._t(len(pool), s + n, s2 + n * n)
                    in_time = cur <= cfg.max_prefill_time
                    if cur - best <= wait_est and (not accepted or in_time):
                        need_break |= not in_time
                        if undecided and not is_ooe:
                            before_ooe, is_ooe = len(accepted), True
                        accepted.append(w)
                        acc_new.append((n, left))
                        acc_total += n + left
                        s, s2 = s + n, s2 + n * n
                        continue
                if (can_undecide and n_in + len(accepted) + len(undecided) + 1 <= cfg.max_num_seqs
                        and _kv_ok(fits, base_total + acc_total + und_total, acc_new, und_new, n, left,
                                   failed_with_undecided)
                        and s + n + us <= batch_max):
                    undecided.append(w)
                    und_new.append((n, left))
                    und_total += n + left
                    us, us2, u_inv = us + n, us2 + n * n, u_inv + 1.0 / n
                    t_all = self._t(len(pool), s + us, s2 + us2)
                    in_time = t_all <= cfg.max_prefill_time
                    if t_all * inv_decode <= wait_est * u_inv and (len(accepted) + len(undecided) == 1
                                                                    or in_time):
                        need_break |= not in_time
                        run_idx = len(undecided)
                    continue
                can_undecide = False
            if allow_ooe and not need_break:
                if not is_ooe:
                    before_ooe, is_ooe = len(accepted), True
                # skip the requests that fail as this one did and change nothing: over the token budget
                # or failing KV admission alone (dominating a recorded failure); once nothing can be
                # undecided, also those too long to be accepted on the instances migration could free
                if skip is None:
                    skip = _Skipper(*self._waiting_arrays(waiting, assume))
                max_prompt = batch_max - s if can_undecide else min(batch_max, isolated_tokens) - s
                i = skip.next(i, capacity - base_total - acc_total, max_prompt, failed_alone) - 1
                continue
            break
        accepted += undecided[:run_idx]
        if accepted:
            self._num_ooe = self._num_ooe + 1 if is_ooe and before_ooe < len(accepted) else 0
        return accepted

    def _waiting_arrays(self, waiting: tuple[WaitingRequest, ...],
                        assume: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Prompt lengths and admission's tokens left of the waiting requests, kept while the view's
        waiting tuple is the same object (a driver that reuses it between calls saves the rebuild)."""
        if self._arrays_of is not waiting:
            self._arrays_of = waiting
            self._arrays = (np.fromiter((w.prompt_len for w in waiting), np.int64, len(waiting)),
                            np.fromiter((_assumed_left(w.max_tokens, 0, assume) for w in waiting), np.int64,
                                        len(waiting)))
        return self._arrays

    # -- Steps 2 and 3: make room, batch, place ---------------------------------------------------
    def _prefill_round(self, view: ClusterView, p: Placement, accepted: list[WaitingRequest],
                       decodable: list[str]) -> tuple[IterationPlan | None, Placement]:
        """The plan (None if no prompt fits) and the placement after its migrations (a copy if any)."""
        lens = [w.prompt_len for w in accepted]
        s, s2, inv_new = sum(lens), sum(n * n for n in lens), sum(1.0 / n for n in lens)
        pool = sorted(view.idle)
        migrations, p = self._consolidate(p, pool, s, s2)
        groups = _groups(decodable, p)
        in_groups = {i for g in groups for i in g.instances}
        available = [i for i in pool if i not in in_groups]  # free, or holding only stuck KV

        # (b) the prompts need more slots: preempt the groups with the most idle slots
        short = s - _free(p, available)
        groups.sort(key=lambda g: _free(p, g.instances) - len(g.requests))
        while short > 0 and groups:
            g = groups.pop()
            available += sorted(g.instances)
            short -= _free(p, g.instances)
        # (c) lend a group's instances when the prefill speed-up beats its decode slow-down
        kept: list[_Group] = []
        for g in groups:
            t_now = self._t(len(available), s, s2)
            t_more = self._t(len(available) + len(g.instances), s, s2)
            speedup = (t_now - t_more) * inv_new
            gen = sum(max(self._gen.get(r, 1), 1) for r in g.requests)
            slowdown = t_more * len(g.requests) * len(g.requests) / gen
            if speedup >= slowdown:
                available += sorted(g.instances)
            else:
                kept.append(g)
        # Step 4 for the kept groups; short of slots, take spare available instances, else lend all
        extras: list[int] = []
        planned = self._plan_decodes(view, p, [_Group(list(g.requests), set(g.instances)) for g in kept],
                                     extras, allow_pause=False)
        spare = sorted(available, key=lambda i: (p.free(i), -i))
        while planned is None and spare and _free(p, [i for i in available if i not in spare[-1:]]) >= s:
            i = spare.pop()
            available.remove(i)
            extras.append(i)
            planned = self._plan_decodes(view, p, [_Group(list(g.requests), set(g.instances)) for g in kept],
                                         list(extras), allow_pause=False)
        if planned is None:
            available, planned = list(pool), ([], [])
        decodes, _ = planned
        used_by_decodes = {i for b in decodes for i in b.instances}
        available = [i for i in available if i not in used_by_decodes]

        prefills = self._batch(accepted, available, p)
        if not prefills:
            return None, p
        plan = IterationPlan(prefills=tuple(prefills), decodes=tuple(decodes), migrations=tuple(migrations))
        return plan, p

    def _consolidate(self, p: Placement, pool: list[int], s: int,
                     s2: int) -> tuple[list[Migration], Placement]:
        """Step 2(a): empty the least-loaded idle instances onto the most-loaded ones while the
        prefill gains at least the migration time, T(n) − T(n+1) ≥ tokens·bytes/bandwidth. Returns the
        migrations and the placement after them (a copy when there are any)."""
        out: list[Migration] = []
        copied = False
        holders = sorted((i for i in pool if p.used(i) > 0), key=lambda i: (p.used(i), i))
        empty = [i for i in pool if p.used(i) == 0]
        caps = sorted((p.capacities[i] for i in pool), reverse=True)
        pool_used = sum(p.used(i) for i in pool)
        min_busy = next(n for n in range(len(caps) + 1) if sum(caps[:n]) >= pool_used)
        if s > sum(caps[min_busy:]):
            return out, p
        while holders and len(empty) < len(pool) - min_busy:
            holders.sort(key=lambda i: (p.used(i), i))
            src = holders[0]
            if s <= _free(p, empty):
                gain = self._t(len(empty), s, s2) - self._t(len(empty) + 1, s, s2)
                if gain < self.cost.migration_time(p.used(src)):
                    break
            dsts = sorted(holders[1:], key=lambda i: (-p.used(i), i))
            if _free(p, dsts) < p.used(src):
                break
            if not copied:
                p, copied = p.copy(), True
            for rid in [r for r in p if src in p.holders(r)]:
                for piece in [r for r in p.ranges(rid) if r.instance == src]:
                    pos = piece.start
                    for d in dsts:
                        take = min(p.free(d), piece.stop - pos)
                        if take > 0:
                            p.move(rid, pos, pos + take, d)
                            out.append(Migration(rid, pos, pos + take, d))
                            pos += take
                        if pos == piece.stop:
                            break
            holders.pop(0)
            empty.append(src)
        return out, p

    def _batch(self, accepted: list[WaitingRequest], available: list[int],
               p: Placement) -> list[PrefillBatch]:
        """Step 3: the DP over the available instances (used tokens ascending); each batch's prompts
        fill its most-used instances first. Drops the newest requests if nothing fits."""
        order = sorted(available, key=lambda i: (p.used(i), i))
        free = [p.free(i) for i in order]
        reqs = list(accepted)
        while reqs:
            lens = [w.prompt_len for w in reqs]
            monotone = len(reqs) > self.config.dp_exact_max_requests
            result = batch_prefills(lens, order, free, self._t_exact, monotone=monotone)
            if result is not None:
                break
            reqs.pop()
        else:
            return []
        out = []
        for b in result.batches:
            left = {i: p.free(i) for i in b.instances}
            fill = sorted(b.instances, key=lambda i: (-p.used(i), i))
            kv: dict[str, tuple[KVRange, ...]] = {}
            for r in b.requests:
                ranges = split_by_capacity(reqs[r].prompt_len, left, fill)
                for x in ranges:
                    left[x.instance] -= x.length
                kv[reqs[r].request_id] = tuple(ranges)
            out.append(PrefillBatch(tuple(reqs[r].request_id for r in b.requests), b.instances, kv))
        return out

    # -- Step 4: decode ---------------------------------------------------------------------------
    def _plan_decodes(self, view: ClusterView, p: Placement, groups: list[_Group], extras: list[int],
                      allow_pause: bool) -> tuple[list[DecodeBatch], list[str]] | None:
        """One multi-master decode batch per group. A group short of slots scales up onto `extras`
        (most free first), then merges with the groups with the most idle slots; still short, it
        pauses its newest requests (FCFS pause) if `allow_pause`, else the whole plan fails (None)."""
        arrival = {r.request_id: r.arrival for r in view.running}
        spare = sorted(extras, key=lambda i: (-p.free(i), i))
        pending = sorted(groups, key=lambda g: _free(p, g.instances) - len(g.requests))
        out: list[DecodeBatch] = []
        paused: list[str] = []
        copied = False
        while pending:
            g = pending.pop(0)
            short = len(g.requests) - _free(p, g.instances)
            while short > 0 and spare:
                i = spare.pop(0)
                g.instances.add(i)
                short -= p.free(i)
            while short > 0 and pending and _free(p, pending[-1].instances) > len(pending[-1].requests):
                h = pending.pop()
                g.requests += h.requests
                g.instances |= h.instances
                short -= _free(p, h.instances) - len(h.requests)
            if short > 0:
                if not allow_pause:
                    return None
                for rid in sorted(g.requests, key=lambda r: (-arrival[r], r)):
                    if short <= 0:
                        break
                    short -= p.length(rid) + 1
                    if not copied:  # (the view's placement is read-only)
                        p, copied = p.copy(), True
                    p.drop(rid)
                    g.requests.remove(rid)
                    paused.append(rid)
            if g.requests:
                reqs = sorted(g.requests, key=lambda r: (arrival[r], r))
                masters = _assign_masters(reqs, sorted(g.instances), p,
                                          self.config.min_comp_bound_decoding_batch_size)
                holders = {h for r in reqs for h in p.holders(r)}
                out.append(DecodeBatch(tuple(reqs), tuple(sorted(holders | set(masters.values()))), masters))
        return out, paused
