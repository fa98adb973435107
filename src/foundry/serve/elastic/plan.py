"""What an elastic scheduler decides and what it sees. Torch-free data, shared by engine and simulator.

An elastic cluster runs *batches* on disjoint sets of idle instances, each batch as long as its
slowest member. A batch is either

- a prefill: its requests' prompts, striped over `instances` (ring attention), whose KV ends where
  `kv_plan` says (a migration plan: the ring moves all KV anyway, so placement is free), or
- a decode: one new token for each request; every instance holding part of a request's KV computes
  a partial attention for its query, the master merges; the new token's KV goes to `new_kv[id]`.

The scheduler is asked again whenever a batch ends (or a request arrives) and plans only with idle
instances and requests that are not in a running batch. Migrations move KV between idle instances
before the iteration's batches start; `paused` requests drop their KV and go back to waiting
(recompute on resume, as LoongServe's pause strategy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from foundry.serve.elastic.placement import KVRange, Placement


@dataclass(frozen=True, slots=True)
class PrefillBatch:
    request_ids: tuple[str, ...]
    instances: tuple[int, ...]  # the ring, in order; the degree of sequence parallelism is its length
    kv_plan: dict[str, tuple[KVRange, ...]]  # where each prompt's KV is kept (instances may lie outside
    # the ring only if they are idle too; by default a subset of it)


@dataclass(frozen=True, slots=True)
class DecodeBatch:
    request_ids: tuple[str, ...]
    instances: tuple[int, ...]  # every instance taking part: masters and KV holders
    new_kv: dict[str, int]  # request id → the instance that stores its new token's KV (its master)


@dataclass(frozen=True, slots=True)
class Migration:
    request_id: str
    start: int
    stop: int
    dst: int


@dataclass(frozen=True, slots=True)
class IterationPlan:
    prefills: tuple[PrefillBatch, ...] = ()
    decodes: tuple[DecodeBatch, ...] = ()
    migrations: tuple[Migration, ...] = ()
    paused: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.prefills or self.decodes or self.migrations or self.paused)

    def busy_instances(self) -> set[int]:
        out: set[int] = set()
        for b in (*self.prefills, *self.decodes):
            out.update(b.instances)
        return out


@dataclass(frozen=True, slots=True)
class WaitingRequest:
    request_id: str
    prompt_len: int  # tokens to prefill (a resumed request: prompt + generated so far)
    arrival: float
    max_tokens: int  # the user's cap on output tokens (the scheduler never sees a true length)


@dataclass(frozen=True, slots=True)
class RunningRequest:
    request_id: str
    context_len: int  # tokens with KV in the cluster
    num_generated: int
    max_tokens: int
    arrival: float


@dataclass(frozen=True)
class ClusterView:
    """A read-only snapshot for one scheduling call."""

    now: float
    waiting: tuple[WaitingRequest, ...]  # in arrival order
    running: tuple[RunningRequest, ...]  # prefilled, not in a running batch, not finished
    placement: Placement  # (read it; the cluster applies the plan)
    idle: frozenset[int]  # instances not in a running batch
    busy_requests: frozenset[str] = field(default_factory=frozenset)  # in a running batch
