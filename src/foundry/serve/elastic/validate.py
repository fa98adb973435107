"""Is an elastic scheduler's plan valid for the view it was made from? Torch-free.

The order in which a driver (engine or simulator) applies an `IterationPlan`, and which this check
assumes, is:

1. ``paused``: drop each request's KV (it goes back to waiting, to be recomputed);
2. ``migrations``, in order: move KV positions between idle instances;
3. start the batches: a prefill's ``kv_plan`` lands in the free slots left after 1–2 (the driver may
   reserve them at the start or assign them at the end: its ring is busy meanwhile), a decode's new
   token goes to ``new_kv[id]`` (one slot per request).

`validate_plan` raises `PlanError` naming the first broken rule: batches on disjoint idle
instances; every request used at most once, prefills from the waiting queue and decodes, pauses
and migrations from the running requests that are not busy; migrations only between idle
instances; each ``kv_plan`` tiles its prompt on the ring (or on idle instances no other batch uses);
each decode batch includes every holder of its requests' KV (after the migrations) and a master
for each; and every instance's new KV fits its free slots.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from foundry.serve.elastic.placement import KVRange, Placement, PlacementError
from foundry.serve.elastic.plan import ClusterView, IterationPlan, Migration


class PlanError(AssertionError):
    """A plan breaks a rule of the view it was made for."""


def copy_placement(p: Placement) -> Placement:
    return p.copy()


def validate_plan(view: ClusterView, plan: IterationPlan) -> None:
    waiting = {w.request_id: w for w in view.waiting}
    running = {r.request_id for r in view.running}
    batches = (*plan.prefills, *plan.decodes)
    owner: dict[int, int] = {}
    for n, b in enumerate(batches):
        if not b.request_ids or not b.instances:
            raise PlanError(f"batch {n} has no requests or no instances")
        for i in b.instances:
            if i not in view.idle:
                raise PlanError(f"batch {n} uses instance {i}, which is not idle")
            if i in owner:
                raise PlanError(f"instance {i} is in batches {owner[i]} and {n}")
            owner[i] = n
    uses = Counter([*(r for b in batches for r in b.request_ids), *plan.paused])
    twice = [r for r, c in uses.items() if c > 1]
    if twice:
        raise PlanError(f"{twice[0]} is used twice (in two batches, or paused and batched)")
    for b in plan.prefills:
        for r in b.request_ids:
            if r not in waiting:
                raise PlanError(f"prefill of {r}, which is not waiting")
    for rid in (*(r for b in plan.decodes for r in b.request_ids), *plan.paused,
                *(m.request_id for m in plan.migrations)):
        if rid not in running or rid in view.busy_requests:
            raise PlanError(f"{rid} is decoded, paused or migrated but is not a running, non-busy request")
    if any(m.request_id in plan.paused for m in plan.migrations):
        raise PlanError("a paused request is also migrated")

    p = copy_placement(view.placement)
    for rid in plan.paused:
        p.drop(rid)
    for m in plan.migrations:
        if m.dst not in view.idle:
            raise PlanError(f"migration of {m.request_id} to instance {m.dst}, which is not idle")
        try:
            moved = p.move(m.request_id, m.start, m.stop, m.dst)
        except PlacementError as e:
            raise PlanError(f"migration {m}: {e}") from e
        if any(piece.instance not in view.idle for piece in moved):
            raise PlanError(f"migration of {m.request_id} takes KV from a busy instance")

    new_kv: Counter[int] = Counter()
    for b in plan.decodes:
        if set(b.new_kv) != set(b.request_ids):
            raise PlanError(f"decode batch {b.request_ids}: new_kv must name a master for each request")
        for rid in b.request_ids:
            holders = p.holders(rid)
            if not holders or not set(holders) <= set(b.instances):
                raise PlanError(f"decode of {rid}: its KV holders {holders} are not all in the batch "
                                f"{b.instances}")
            if b.new_kv[rid] not in b.instances:
                raise PlanError(f"decode of {rid}: master {b.new_kv[rid]} is not in the batch")
            new_kv[b.new_kv[rid]] += 1
    for n, b in enumerate(plan.prefills):
        if set(b.kv_plan) != set(b.request_ids):
            raise PlanError(f"prefill batch {n}: kv_plan must cover exactly its requests")
        for rid in b.request_ids:
            if rid in p:
                raise PlanError(f"prefill of {rid}, which already holds KV")
            pos = 0
            for r in sorted(b.kv_plan[rid], key=lambda r: r.start):
                if r.start != pos:
                    raise PlanError(f"prefill of {rid}: kv_plan has a gap or overlap at {pos}")
                if r.instance not in b.instances and (r.instance not in view.idle or r.instance in owner):
                    raise PlanError(f"prefill of {rid}: KV on instance {r.instance}, outside the ring and "
                                    "not a free idle instance")
                pos = r.stop
                new_kv[r.instance] += r.length
            if pos != waiting[rid].prompt_len:
                raise PlanError(f"prefill of {rid}: kv_plan holds {pos} tokens, the prompt has "
                                f"{waiting[rid].prompt_len}")
    for i, n in new_kv.items():
        if n > p.free(i):
            raise PlanError(f"instance {i} gets {n} new tokens but has {p.free(i)} free slots")


@dataclass
class AppliedPlan:
    """What applying a plan changed in the placement, for the driver to act on (free, copy KV, send
    positions): written once here, in the order above, for the engine's cluster and the simulator."""

    dropped: dict[str, tuple[KVRange, ...]] = field(default_factory=dict)  # paused request → what it held
    moved: list[tuple[Migration, list[KVRange]]] = field(default_factory=list)  # pieces with their sources
    decode_positions: dict[str, int] = field(default_factory=dict)  # a decode's new token's position


def apply_plan(placement: Placement, plan: IterationPlan) -> AppliedPlan:
    """Apply `plan` to `placement` in the drivers' order: pauses drop KV, migrations move it, prefills
    reserve their `kv_plan`, decodes append their new token's KV at `new_kv`."""
    out = AppliedPlan()
    for rid in plan.paused:
        out.dropped[rid] = placement.drop(rid)
    for m in plan.migrations:
        out.moved.append((m, placement.move(m.request_id, m.start, m.stop, m.dst)))
    for p in plan.prefills:
        for rid in p.request_ids:
            placement.assign(rid, p.kv_plan[rid])
    for d in plan.decodes:
        for rid in d.request_ids:
            out.decode_positions[rid] = placement.length(rid)
            placement.append(rid, d.new_kv[rid])
    return out
