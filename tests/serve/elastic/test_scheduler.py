"""The elastic schedulers on a fake clock: every plan valid, every request finished, KV conserved."""

import heapq
import random
from dataclasses import dataclass

import pytest

from foundry.serve.elastic.cost_model import DecodeCoeffs, ESPCostModel, PrefillCoeffs
from foundry.serve.elastic.placement import KVRange, Placement
from foundry.serve.elastic.plan import (
    ClusterView,
    DecodeBatch,
    IterationPlan,
    Migration,
    PrefillBatch,
    RunningRequest,
    WaitingRequest,
)
from foundry.serve.elastic.scheduler import LoongServeConfig, LoongServeScheduler
from foundry.serve.elastic.static_sp import StaticSPScheduler
from foundry.serve.elastic.validate import PlanError, validate_plan

# A_k grows with the ring, B_k and C_k shrink: SP pays for long prompts (times in seconds)
COST = ESPCostModel(prefill={k: PrefillCoeffs(0.002 * k, 1e-4 / k, 2e-6 / k) for k in range(1, 5)},
                    decode=DecodeCoeffs(0.01, 1e-5, 1e-4), kv_bytes_per_token=1.0, bandwidth=1e6)


@dataclass
class _Req:
    rid: str
    prompt: int
    out: int  # true output length: the driver knows it, the scheduler never does
    max_tokens: int
    arrival: float
    gen: int = 0
    ctx: int = 0  # tokens with KV placed
    state: str = "future"  # future, waiting, prefill, running, decode, done


class _Driver:
    """A torch-free cluster on a fake clock: applies plans to a Placement and checks it every step."""

    def __init__(self, scheduler, capacities, reqs: list[_Req], seed: int = 0) -> None:
        self.sched, self.p, self.reqs = scheduler, Placement(capacities), {r.rid: r for r in reqs}
        self.events: list = []
        self.seq = 0
        self.idle = set(range(len(capacities)))
        self.stats = {"pauses": 0, "migrations": 0, "scale_up": 0, "spill": 0, "ring": 0, "plans": 0,
                      "multi_holder_decode": 0}
        for r in reqs:
            self._push(r.arrival, "arrive", r.rid)

    def _push(self, t, kind, payload) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, payload))

    def view(self, now) -> ClusterView:
        rs = sorted(self.reqs.values(), key=lambda r: (r.arrival, r.rid))
        waiting = tuple(WaitingRequest(r.rid, r.prompt + r.gen, r.arrival, r.max_tokens - r.gen)
                        for r in rs if r.state == "waiting")
        running = tuple(RunningRequest(r.rid, r.ctx, r.gen, r.max_tokens, r.arrival)
                        for r in rs if r.state == "running")
        busy = frozenset(r.rid for r in rs if r.state in ("prefill", "decode"))
        return ClusterView(now, waiting, running, self.p, frozenset(self.idle), busy)

    def check(self) -> None:
        placed = ("prefill", "running", "decode")
        self.p.check({r.rid: r.ctx for r in self.reqs.values() if r.state in placed})

    def run(self, max_steps: int = 20000) -> None:
        steps = 0
        while any(r.state != "done" for r in self.reqs.values()):
            assert self.events, "deadlock: work left, nothing running, nothing planned"
            now, _, kind, payload = heapq.heappop(self.events)
            self._handle(kind, payload)
            while self.events and self.events[0][0] == now:
                _, _, kind, payload = heapq.heappop(self.events)
                self._handle(kind, payload)
            self.check()
            view = self.view(now)
            plan = self.sched.schedule(view)
            validate_plan(view, plan)
            self._apply(now, plan)
            self.check()
            steps += 1
            assert steps < max_steps, "no progress"

    def _handle(self, kind, payload) -> None:
        if kind == "arrive":
            self.reqs[payload].state = "waiting"
        elif kind == "prefill_end":
            batch = payload
            self.idle |= set(batch.instances)
            for rid in batch.request_ids:
                self._generated(self.reqs[rid])
        else:
            batch = payload
            self.idle |= set(batch.instances)
            for rid in batch.request_ids:
                r = self.reqs[rid]
                self.p.append(rid, batch.new_kv[rid])  # the previous token's KV
                r.ctx += 1
                self._generated(r)

    def _generated(self, r: _Req) -> None:
        r.gen += 1
        r.state = "running"
        if r.gen == r.out:
            self.p.drop(r.rid)
            r.state, r.ctx = "done", 0
            self.sched.observe_finished(r.rid, r.gen)

    def _apply(self, now, plan: IterationPlan) -> None:
        self.stats["plans"] += not plan.is_empty
        for rid in plan.paused:
            r = self.reqs[rid]
            self.p.drop(rid)
            r.state, r.ctx = "waiting", 0
            self.stats["pauses"] += 1
        for m in plan.migrations:
            self.p.move(m.request_id, m.start, m.stop, m.dst)
            self.stats["migrations"] += 1
        for b in plan.prefills:
            self.idle -= set(b.instances)
            lens = []
            for rid in b.request_ids:
                r = self.reqs[rid]
                self.p.assign(rid, b.kv_plan[rid])  # reserve at the start: the ring is busy anyway
                r.ctx, r.state = r.prompt + r.gen, "prefill"
                lens.append(r.ctx)
                self.stats["spill"] += len({x.instance for x in b.kv_plan[rid]}) > 1
            self.stats["ring"] += len(b.instances) > 1
            self._push(now + COST.prefill_time_of(len(b.instances), lens), "prefill_end", b)
        for b in plan.decodes:
            self.idle -= set(b.instances)
            t = 0.0
            for i in b.instances:
                masters = sum(1 for rid in b.request_ids if b.new_kv[rid] == i)
                local = sum(self.p.tokens_on(rid, i) for rid in b.request_ids)
                t = max(t, COST.decode_time(masters, local))
            for rid in b.request_ids:
                self.reqs[rid].state = "decode"
                self.stats["scale_up"] += b.new_kv[rid] not in self.p.holders(rid)
                self.stats["multi_holder_decode"] += len(self.p.holders(rid)) > 1
            self._push(now + t, "decode_end", b)


def _workload(rng: random.Random, n: int, max_need: int, rate: float) -> list[_Req]:
    out, t = [], 0.0
    for i in range(n):
        t += rng.expovariate(rate)
        prompt = rng.randint(1, max(1, int(max_need * 0.8)))
        max_tokens = rng.randint(1, max(1, min(40, max_need - prompt)))
        out.append(_Req(f"r{i}", prompt, rng.randint(1, max_tokens), max_tokens, t))
    return out


def _run_random(make, num_cases: int, seed: int, group: int = 1) -> dict[str, int]:
    rng = random.Random(seed)
    totals: dict[str, int] = {}
    for _ in range(num_cases):
        m = rng.choice([g for g in (1, 2, 3, 4) if g % group == 0] or [group])
        caps = [rng.randint(40, 120) for _ in range(m)]
        bound = min(sum(caps[i:i + group]) for i in range(0, m - m % group, group)) if group > 1 else (
            sum(caps) if isinstance(make(1), LoongServeScheduler) else min(caps))
        reqs = _workload(rng, rng.randint(5, 25), bound, rate=rng.choice([5.0, 50.0, 500.0]))
        d = _Driver(make(m), caps, reqs)
        d.run()
        assert all(r.state == "done" and r.gen == r.out for r in d.reqs.values())
        assert all(d.p.used(i) == 0 for i in range(m))
        for k, v in d.stats.items():
            totals[k] = totals.get(k, 0) + v
    return totals


def test_loongserve_runs_random_workloads_to_completion_with_valid_plans():
    def make(_m):
        cfg = LoongServeConfig(max_num_ooe=2, min_comp_bound_decoding_batch_size=4)
        return LoongServeScheduler(COST, cfg)

    totals = _run_random(make, num_cases=30, seed=1)
    for what in ("spill", "ring", "scale_up", "multi_holder_decode"):
        assert totals[what] > 0, f"the random runs never exercised {what}: {totals}"


def test_loongserve_optimistic_admission_pauses_and_migrates_but_conserves_kv():
    cfg = LoongServeConfig(admission_max_new_tokens=2, min_comp_bound_decoding_batch_size=2,
                           max_wait_tokens=3)
    cheap_moves = ESPCostModel(prefill=COST.prefill, decode=COST.decode, kv_bytes_per_token=1e-9,
                               bandwidth=1e9)

    def make(_m):
        return LoongServeScheduler(cheap_moves, cfg)

    totals = _run_random(make, num_cases=30, seed=2)
    assert totals["pauses"] > 0 and totals["migrations"] > 0, totals


@pytest.mark.parametrize("group", [1, 2])
def test_static_sp_runs_random_workloads_on_fixed_groups(group):
    def make(m):
        return StaticSPScheduler(COST, group, admission_max_new_tokens=3)

    totals = _run_random(make, num_cases=20, seed=3 + group, group=group)
    assert totals["pauses"] > 0
    assert totals["scale_up"] == 0 or group > 1  # one instance per group: the new token stays put


def test_static_sp_keeps_each_request_in_one_group():
    sched = StaticSPScheduler(COST, 2)
    reqs = [_Req(f"r{i}", 30, 5, 5, 0.0) for i in range(6)]
    d = _Driver(sched, [100] * 4, reqs)
    seen: dict[str, set[int]] = {}
    orig = d._apply

    def apply(now, plan):
        for b in (*plan.prefills, *plan.decodes):
            assert b.instances in ((0, 1), (2, 3))
            for rid in b.request_ids:
                seen.setdefault(rid, set()).add(b.instances[0])
        orig(now, plan)

    d._apply = apply
    d.run()
    assert all(len(g) == 1 for g in seen.values()) and {min(g) for g in seen.values()} == {0, 2}


# -- hand cases -----------------------------------------------------------------------------------
def _view(p, waiting=(), running=(), idle=None, busy=frozenset(), now=0.0):
    idle = frozenset(range(p.num_instances)) if idle is None else frozenset(idle)
    return ClusterView(now, tuple(waiting), tuple(running), p, idle, frozenset(busy))


def test_a_prompt_larger_than_one_instance_spans_instances():
    p = Placement([100, 100, 100])
    view = _view(p, waiting=[WaitingRequest("a", 250, 0.0, 10)])
    plan = LoongServeScheduler(COST).schedule(view)
    validate_plan(view, plan)
    (b,) = plan.prefills
    assert sum(r.length for r in b.kv_plan["a"]) == 250 and len({r.instance for r in b.kv_plan["a"]}) == 3


def test_decode_scales_up_onto_a_free_instance_when_holders_are_full():
    p = Placement([10, 10])
    p.assign("a", [KVRange(0, 0, 10)])
    view = _view(p, running=[RunningRequest("a", 10, 1, 20, 0.0)])
    plan = LoongServeScheduler(COST).schedule(view)
    validate_plan(view, plan)
    (b,) = plan.decodes
    assert b.new_kv == {"a": 1} and b.instances == (0, 1) and not plan.paused


def test_decode_needs_every_holder_idle_and_pauses_the_newest_when_full():
    p = Placement([10, 10])
    p.assign("old", [KVRange(0, 0, 6), KVRange(1, 6, 10)])
    p.assign("new", [KVRange(0, 0, 4), KVRange(1, 4, 10)])
    running = [RunningRequest("old", 10, 3, 20, 0.0), RunningRequest("new", 10, 1, 20, 1.0)]
    sched = LoongServeScheduler(COST)
    assert sched.schedule(_view(p, running=running, idle={0})).is_empty  # holder 1 is busy
    view = _view(p, running=running)
    plan = sched.schedule(view)
    validate_plan(view, plan)
    assert plan.paused == ("new",)
    (b,) = plan.decodes
    assert b.request_ids == ("old",) and set(b.instances) == {0, 1}


def test_prefill_waits_for_max_wait_tokens_while_decoding():
    p = Placement([100, 100])
    p.assign("a", [KVRange(0, 0, 10)])
    sched = LoongServeScheduler(COST, LoongServeConfig(max_wait_tokens=3))
    kinds = []
    for gen in range(1, 6):
        view = _view(p, waiting=[WaitingRequest("b", 20, 1.0, 5)],
                     running=[RunningRequest("a", 10, gen, 50, 0.0)])
        plan = sched.schedule(view)
        validate_plan(view, plan)
        kinds.append("prefill" if plan.prefills else "decode")
        if plan.prefills:
            break
    assert kinds == ["decode", "decode", "decode", "prefill"]


def test_migration_empties_a_lightly_loaded_instance_for_a_wider_ring():
    cost = ESPCostModel(prefill={1: PrefillCoeffs(0, 1e-2, 0), 2: PrefillCoeffs(0, 5e-3, 0),
                                 3: PrefillCoeffs(0, 3.3e-3, 0)}, kv_bytes_per_token=1.0, bandwidth=1e12)
    p = Placement([100, 100, 100])
    p.assign("a", [KVRange(0, 0, 5)])
    p.assign("b", [KVRange(1, 0, 60)])
    running = [RunningRequest("a", 5, 1, 10, 0.0), RunningRequest("b", 60, 1, 10, 0.0)]
    view = _view(p, waiting=[WaitingRequest("c", 200, 1.0, 5)], running=running)
    sched = LoongServeScheduler(cost, LoongServeConfig(max_wait_tokens=0))
    plan = sched.schedule(view)
    validate_plan(view, plan)
    assert plan.migrations == (Migration("a", 0, 5, 1),)
    (b,) = plan.prefills
    assert 0 in b.instances and sum(r.length for r in b.kv_plan["c"]) == 200


def test_validate_plan_catches_broken_plans():
    p = Placement([10, 10])
    p.assign("a", [KVRange(0, 0, 5), KVRange(1, 5, 8)])
    running = [RunningRequest("a", 8, 1, 5, 0.0)]
    w = [WaitingRequest("b", 6, 0.0, 5)]
    view = _view(p, waiting=w, running=running, idle={0, 1})
    bad = {
        "not idle": IterationPlan(decodes=(DecodeBatch(("a",), (0, 1), {"a": 0}),)),
        "holders": IterationPlan(decodes=(DecodeBatch(("a",), (0,), {"a": 0}),)),
        "twice": IterationPlan(decodes=(DecodeBatch(("a",), (0, 1), {"a": 0}),), paused=("a",)),
        "gap": IterationPlan(prefills=(PrefillBatch(("b",), (0,), {"b": (KVRange(0, 1, 6),)}),)),
        "free slots": IterationPlan(prefills=(PrefillBatch(("b",), (0,), {"b": (KVRange(0, 0, 6),)}),)),
        "not waiting": IterationPlan(prefills=(PrefillBatch(("a",), (0,), {"a": (KVRange(0, 0, 1),)}),)),
    }
    for what, plan in bad.items():
        v = _view(p, waiting=w, running=running, idle={0}) if what == "not idle" else view
        with pytest.raises(PlanError):
            validate_plan(v, plan)
    validate_plan(view, IterationPlan(paused=("a",), prefills=(
        PrefillBatch(("b",), (0,), {"b": (KVRange(0, 0, 6),)}),)))  # the pause frees the slots first


def test_masters_fill_roomier_instances_when_a_fuller_one_cannot_take_its_share():
    from foundry.serve.elastic.scheduler import _assign_masters

    p = Placement([10, 10])
    p.assign("x", [KVRange(0, 0, 5), KVRange(1, 5, 14)])  # free: 5 on 0, 1 on 1
    got = _assign_masters(["a", "b", "c", "d"], [0, 1], p, min_batch=1)
    assert sorted(got.values()).count(0) == 3 and sorted(got.values()).count(1) == 1
