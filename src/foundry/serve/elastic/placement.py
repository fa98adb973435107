"""Where each request's KV lives in an elastic cluster: token ranges per instance. Torch-free.

LoongServe (elastic sequence parallelism) spreads one request's KV over several instances: a long
prompt's KV is split by the prefill's migration plan, decode tokens append where there is room, and
scaling moves ranges between instances. The placement record is the one source of truth for that;
every engine and simulator step keeps it exact:

    every position 0 .. len-1 of every request is held by exactly one instance,
    and no instance holds more tokens than its capacity.

`check()` asserts both (tests call it after every step).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KVRange:
    """Positions ``start .. stop-1`` of one request, held by `instance`."""

    instance: int
    start: int
    stop: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop:
            raise ValueError(f"KVRange: need 0 <= start < stop, got {self.start}..{self.stop}")

    @property
    def length(self) -> int:
        return self.stop - self.start


class PlacementError(AssertionError):
    """The placement record broke an invariant (a lost, doubled or over-capacity token)."""


class Placement:
    """request id → its KV ranges (sorted by position, adjacent ranges on one instance fused)."""

    def __init__(self, capacities: Iterable[int]) -> None:
        self.capacities: tuple[int, ...] = tuple(int(c) for c in capacities)
        if not self.capacities or min(self.capacities) < 0:
            raise ValueError(f"capacities: need a non-negative capacity per instance, got {self.capacities}")
        # each request's list is replaced, never changed in place, so copies may share the lists
        self._ranges: dict[str, list[KVRange]] = {}
        self._used = [0] * len(self.capacities)
        self._len: dict[str, int] = {}  # request id → tokens held (its context length)
        self._holders: dict[str, tuple[int, ...]] = {}  # request id → holders, cached until it changes
        self._per: dict[str, dict[int, int]] = {}  # request id → instance → tokens (replaced, not changed)

    def copy(self) -> Placement:
        """An independent record with the same ranges (cheap: the per-request lists are shared)."""
        out = Placement.__new__(Placement)
        out.capacities = self.capacities
        out._ranges = dict(self._ranges)
        out._used = list(self._used)
        out._len = dict(self._len)
        out._holders = dict(self._holders)
        out._per = dict(self._per)
        return out

    # -- reading ---------------------------------------------------------------------------------
    @property
    def num_instances(self) -> int:
        return len(self.capacities)

    def used(self, instance: int) -> int:
        return self._used[instance]

    def free(self, instance: int) -> int:
        return self.capacities[instance] - self._used[instance]

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._ranges

    def __iter__(self) -> Iterator[str]:
        return iter(self._ranges)

    def ranges(self, request_id: str) -> tuple[KVRange, ...]:
        return tuple(self._ranges.get(request_id, ()))

    def length(self, request_id: str) -> int:
        """Tokens of `request_id` whose KV is held somewhere (its context length)."""
        return self._len.get(request_id, 0)

    def holders(self, request_id: str) -> tuple[int, ...]:
        """The instances holding part of `request_id`'s KV, ascending."""
        hs = self._holders.get(request_id)
        if hs is None:
            rs = self._ranges.get(request_id)
            if not rs:
                return ()
            hs = self._holders[request_id] = (rs[0].instance,) if len(rs) == 1 else tuple(
                sorted({r.instance for r in rs}))
        return hs

    def tokens_on(self, request_id: str, instance: int) -> int:
        return self._per.get(request_id, {}).get(instance, 0)

    def tokens_by_instance(self, request_id: str) -> dict[int, int]:
        """instance → tokens of `request_id` it holds (a shared record: read it, do not change it)."""
        return self._per.get(request_id, {})

    # -- changing --------------------------------------------------------------------------------
    def assign(self, request_id: str, ranges: Iterable[KVRange]) -> None:
        """Place a new request's first KV (a prefill's migration plan): ranges must tile 0 .. n-1."""
        if request_id in self._ranges:
            raise PlacementError(f"{request_id}: already placed")
        rs = sorted(ranges, key=lambda r: r.start)
        pos = 0
        for r in rs:
            if r.start != pos:
                raise PlacementError(f"{request_id}: ranges must tile 0..n-1, gap or overlap at {pos}")
            pos = r.stop
        self._add_all(request_id, rs)

    def append(self, request_id: str, instance: int, count: int = 1) -> KVRange:
        """New tokens' KV (decode) on `instance`, at the request's next positions."""
        self._check_instance(instance)
        if self._used[instance] + count > self.capacities[instance]:
            raise PlacementError(f"{request_id}: instance {instance} would exceed its capacity "
                                 f"{self.capacities[instance]}")
        n = self._len.get(request_id, 0)
        r = KVRange(instance, n, n + count)
        self._used[instance] += count
        old = self._ranges.get(request_id)
        if old and old[-1].instance == instance:  # the last range grows (as _fused would fuse them)
            self._ranges[request_id] = [*old[:-1], KVRange(instance, old[-1].start, n + count)]
        else:  # (the old list is fused already: nothing else to fuse)
            self._ranges[request_id] = [*(old or ()), r]
        per = self._per.get(request_id)
        if per is None or instance not in per:
            self._holders.pop(request_id, None)
        per = dict(per or ())
        per[instance] = per.get(instance, 0) + count
        self._per[request_id] = per
        self._len[request_id] = n + count
        return r

    def move(self, request_id: str, start: int, stop: int, dst: int) -> list[KVRange]:
        """Migrate positions ``start .. stop-1`` of a request to `dst`; returns the moved pieces
        (with their source instances) in position order."""
        moved: list[KVRange] = []
        kept: list[KVRange] = []
        for r in self._ranges.get(request_id, []):
            lo, hi = max(r.start, start), min(r.stop, stop)
            if lo >= hi:
                kept.append(r)
                continue
            moved.append(KVRange(r.instance, lo, hi))
            if r.start < lo:
                kept.append(KVRange(r.instance, r.start, lo))
            if hi < r.stop:
                kept.append(KVRange(r.instance, hi, r.stop))
        if sum(m.length for m in moved) != stop - start:
            raise PlacementError(f"{request_id}: positions {start}..{stop - 1} are not all held")
        self._check_instance(dst)
        already = sum(m.length for m in moved if m.instance == dst)
        if self._used[dst] - already + (stop - start) > self.capacities[dst]:
            raise PlacementError(f"{request_id}: instance {dst} would exceed its capacity "
                                 f"{self.capacities[dst]}")
        for m in moved:
            self._used[m.instance] -= m.length
        self._used[dst] += stop - start
        self._ranges[request_id] = _fused(sorted(kept + [KVRange(dst, start, stop)], key=lambda r: r.start))
        self._holders.pop(request_id, None)
        self._per[request_id] = _per_instance(self._ranges[request_id])
        return moved

    def drop(self, request_id: str) -> tuple[KVRange, ...]:
        """Free a request's KV (finished, aborted, or paused for recompute); returns what it held."""
        rs = self._ranges.pop(request_id, [])
        self._len.pop(request_id, None)
        self._holders.pop(request_id, None)
        self._per.pop(request_id, None)
        for r in rs:
            self._used[r.instance] -= r.length
        return tuple(rs)

    def _add_all(self, request_id: str, ranges: list[KVRange]) -> None:
        need = [0] * self.num_instances
        for r in ranges:
            self._check_instance(r.instance)
            need[r.instance] += r.length
        over = [i for i, n in enumerate(need) if self._used[i] + n > self.capacities[i]]
        if over:
            raise PlacementError(f"{request_id}: instance {over[0]} would exceed its capacity "
                                 f"{self.capacities[over[0]]}")
        for i, n in enumerate(need):
            self._used[i] += n
        self._ranges[request_id] = _fused(sorted(ranges, key=lambda r: r.start))
        self._len[request_id] = sum(r.length for r in ranges)
        self._holders.pop(request_id, None)
        self._per[request_id] = _per_instance(ranges)

    def _check_instance(self, i: int) -> None:
        if not 0 <= i < self.num_instances:
            raise PlacementError(f"instance {i} does not exist (cluster of {self.num_instances})")

    # -- the invariant ---------------------------------------------------------------------------
    def check(self, lengths: dict[str, int] | None = None) -> None:
        """Every request's ranges tile 0 .. n-1 (with n = `lengths[id]` where given, covering exactly
        the given requests), per-instance counts match, and no capacity is exceeded."""
        used = [0] * self.num_instances
        if lengths is not None and set(lengths) != set(self._ranges):
            raise PlacementError(f"placed {sorted(self._ranges)} but expected {sorted(lengths)}")
        for rid, rs in self._ranges.items():
            pos = 0
            for r in rs:
                if r.start != pos:
                    where = "twice" if r.start < pos else "nowhere"
                    raise PlacementError(f"{rid}: position {pos} is held {where}")
                pos = r.stop
                used[r.instance] += r.length
            if lengths is not None and pos != lengths[rid]:
                raise PlacementError(f"{rid}: holds {pos} tokens, expected {lengths[rid]}")
            if (self._len.get(rid) != pos or self.holders(rid) != tuple(sorted({r.instance for r in rs}))
                    or self._per.get(rid) != _per_instance(rs)):
                raise PlacementError(f"{rid}: cached length, holders or tokens per instance disagree with "
                                     "its ranges")
        if (set(self._len) != set(self._ranges) or set(self._per) != set(self._ranges)
                or not set(self._holders) <= set(self._ranges)):
            raise PlacementError("cached lengths or holders name requests without ranges")
        if used != self._used:
            raise PlacementError(f"per-instance counts {self._used} disagree with the ranges {used}")
        for i, (u, c) in enumerate(zip(used, self.capacities, strict=True)):
            if u > c:
                raise PlacementError(f"instance {i} holds {u} tokens over its capacity {c}")


def _per_instance(ranges: Iterable[KVRange]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in ranges:
        out[r.instance] = out.get(r.instance, 0) + r.length
    return out


def _fused(ranges: list[KVRange]) -> list[KVRange]:
    out: list[KVRange] = []
    for r in ranges:
        if out and out[-1].instance == r.instance and out[-1].stop == r.start:
            out[-1] = KVRange(r.instance, out[-1].start, r.stop)
        else:
            out.append(r)
    return out


def split_by_capacity(length: int, free: dict[int, int], order: Iterable[int]) -> list[KVRange]:
    """A prompt's KV ranges filling `order`'s instances in turn up to their free slots (LoongServe's
    migration plan fills the most-used instances first); raises if the cluster cannot hold it."""
    out: list[KVRange] = []
    pos = 0
    for i in order:
        take = min(free.get(i, 0), length - pos)
        if take > 0:
            out.append(KVRange(i, pos, pos + take))
            pos += take
        if pos == length:
            return out
    raise PlacementError(f"{length} tokens do not fit in the free slots {dict(free)}")
