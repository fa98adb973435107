"""KV-cache accounting: a device pool and a host pool of fixed-size blocks, and block tables.

Holds no tensors. Every request with cached KV has one block table, all in one pool. Blocks are
refcounted so tables can share them (`fork`); a write into a shared, partly filled last block
copies it first (copy-on-write), except by the fork's source, which goes on filling it in place: a
forked table reads only the slots filled when it forked, so one in-place writer per block is safe (a
running source then never needs more blocks than before the fork). Swaps move a whole table between
pools and return a copy plan `[(src_block, dst_block), ...]` that the cache engine executes.
`check_invariants` audits it all.

With a KV window (StreamingLLM-style), a table keeps its first `sink` blocks and the blocks of its last
`window` computed tokens; the blocks between are freed as the request grows (`evict`), and
`num_evicted` logical blocks are missing from its list. With prefix caching (`prefix_cache.py`), full
device blocks are also entered by content; a new request takes the cached blocks of its prompt's
longest cached prefix (`acquire_cached`), and a cached block whose last user left waits on the free
list until reused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from foundry.serve.prefix_cache import ROOT, PrefixCache
from foundry.serve.sequence import KV_DEVICE, KV_HOST, KV_NONE, KVLocation

CopyPlan = list[tuple[int, int]]


class InvariantError(AssertionError):
    """The block accounting is inconsistent (a bug, never a user error)."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvariantError(message)


class BlockPool:
    """Free list and refcounts of one pool."""

    def __init__(self, num_blocks: int, on_reuse: Callable[[int], None] | None = None) -> None:
        self.num_blocks = num_blocks
        self.free: deque[int] = deque(range(num_blocks))
        self.refcount = [0] * num_blocks
        self.num_shared = 0  # blocks with refcount > 1 (none unless tables were forked)
        self.on_reuse = on_reuse  # told of each block handed out (the prefix cache forgets it)

    @property
    def num_free(self) -> int:
        return len(self.free)

    def allocate(self) -> int:
        if not self.free:
            raise RuntimeError("block pool exhausted: the caller must check capacity first")
        block = self.free.popleft()
        self.refcount[block] = 1
        if self.on_reuse is not None:
            self.on_reuse(block)
        return block

    def take(self, block: int) -> None:
        """One more reference to a block found in the prefix cache (free, or in use by others)."""
        if self.refcount[block] == 0:
            self.free.remove(block)  # (C-speed scan; only on a cache hit)
            self.refcount[block] = 1
        else:
            self.incref(block)

    def incref(self, block: int) -> None:
        _check(self.refcount[block] > 0, f"block {block} is free")
        self.refcount[block] += 1
        if self.refcount[block] == 2:
            self.num_shared += 1

    def decref(self, block: int) -> None:
        _check(self.refcount[block] > 0, f"block {block} freed twice")
        self.refcount[block] -= 1
        if self.refcount[block] == 0:
            self.free.append(block)
        elif self.refcount[block] == 1:
            self.num_shared -= 1


@dataclass
class BlockTable:
    blocks: list[int]
    num_tokens: int  # slots in use (KV written or about to be written this step)
    location: KVLocation
    copies_tail: bool = False  # forked: copy a shared, partly filled last block before writing into it
    cached: list[int] = field(default_factory=list)  # prefix-cache entry ids of its first full blocks
    num_evicted: int = 0  # logical blocks after the sink blocks that a KV window freed


class BlockManager:
    def __init__(self, block_size: int, num_device_blocks: int, num_host_blocks: int = 0, *,
                 prefix_caching: bool = False, kv_window: tuple[int, int] | None = None) -> None:
        if block_size < 1:
            raise ValueError(f"block_size: must be >= 1, got {block_size}")
        if num_device_blocks < 1:
            raise ValueError(f"num_device_blocks: must be >= 1, got {num_device_blocks}")
        if num_host_blocks < 0:
            raise ValueError(f"num_host_blocks: must be >= 0, got {num_host_blocks}")
        self.block_size = block_size
        # (sink tokens, window tokens): as whole blocks, the sinks rounded up
        self.sink_blocks, self.window_tokens = (0, 0) if kv_window is None else (
            -(-kv_window[0] // block_size), kv_window[1])
        self.kv_window = kv_window
        self.prefix_cache = PrefixCache(block_size) if prefix_caching else None
        self.device = BlockPool(num_device_blocks, self.prefix_cache.evict if self.prefix_cache else None)
        self.host = BlockPool(num_host_blocks)
        self.tables: dict[str, BlockTable] = {}

    # ---- queries (all a policy may call) -------------------------------------------------------
    @property
    def num_free_device_blocks(self) -> int:
        return self.device.num_free

    @property
    def num_free_host_blocks(self) -> int:
        return self.host.num_free

    @property
    def device_usage(self) -> float:
        return 1.0 - self.device.num_free / self.device.num_blocks

    @property
    def host_usage(self) -> float:
        return 0.0 if self.host.num_blocks == 0 else 1.0 - self.host.num_free / self.host.num_blocks

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def most_blocks_held(self, num_tokens: int, step_tokens: int) -> int:
        """The most device blocks a request of `num_tokens` tokens holds at once when a step computes
        at most `step_tokens` tokens (a KV window bounds it: sinks, window and one step's growth)."""
        need = self.blocks_for(num_tokens)
        if self.kv_window is None:
            return need
        return min(need, self.sink_blocks + self.blocks_for(self.window_tokens + step_tokens) + 1)

    def num_evicted_tokens(self, request_id: str) -> int:
        table = self.tables.get(request_id)
        return 0 if table is None else table.num_evicted * self.block_size

    def evict(self, request_id: str, num_computed: int) -> None:
        """KV window: free the blocks after the sinks that lie wholly before the last `window` computed
        tokens."""
        table = self.tables.get(request_id)
        if self.kv_window is None or table is None or table.location is not KV_DEVICE:
            return
        first_kept = max(0, num_computed - self.window_tokens) // self.block_size  # logical block index
        n = first_kept - self.sink_blocks - table.num_evicted
        if n <= 0:
            return
        start = self.sink_blocks
        for b in table.blocks[start:start + n]:
            self.device.decref(b)
        del table.blocks[start:start + n]
        table.num_evicted += n

    def location(self, request_id: str) -> KVLocation:
        table = self.tables.get(request_id)
        return KV_NONE if table is None else table.location

    def num_blocks(self, request_id: str) -> int:
        table = self.tables.get(request_id)
        return 0 if table is None else len(table.blocks)

    def num_exclusive_blocks(self, request_id: str) -> int:
        """Blocks that freeing the request's table returns to its pool (not those shared by a fork)."""
        table = self.tables.get(request_id)
        if table is None:
            return 0
        pool = self.device if table.location is KV_DEVICE else self.host
        if pool.num_shared == 0:
            return len(table.blocks)
        return sum(1 for b in table.blocks if pool.refcount[b] == 1)

    def block_ids(self, request_id: str) -> list[int]:
        return self.tables[request_id].blocks

    def num_new_blocks(self, request_id: str, num_tokens: int) -> int:
        """Device blocks needed so the request's device table holds `num_tokens` slots."""
        # (hot path: called for every scheduled request several times per step, so `blocks_for` and
        # `_shared_partial_tail` are inlined here; the result is the same)
        table = self.tables.get(request_id)
        if table is None:
            return -(-num_tokens // self.block_size)
        if table.location is not KV_DEVICE:
            raise ValueError(f"request {request_id!r}: KV is on the host; swap it in first")
        blocks = table.blocks
        extra = -(-num_tokens // self.block_size) - table.num_evicted - len(blocks)
        if extra < 0:
            extra = 0
        if (num_tokens > table.num_tokens and table.copies_tail and blocks
                and table.num_tokens % self.block_size != 0 and self.device.refcount[blocks[-1]] > 1):
            extra += 1  # copy-on-write of the last block
        return extra

    def can_allocate(self, request_id: str, num_tokens: int) -> bool:
        return self.num_new_blocks(request_id, num_tokens) <= self.device.num_free

    def can_swap_out(self, request_id: str) -> bool:
        table = self.tables.get(request_id)
        return (table is not None and table.location is KV_DEVICE
                and len(table.blocks) <= self.host.num_free
                and all(self.device.refcount[b] == 1 for b in table.blocks))

    def can_swap_in(self, request_id: str) -> bool:
        table = self.tables.get(request_id)
        return (table is not None and table.location is KV_HOST
                and len(table.blocks) <= self.device.num_free)

    # ---- actions (the engine loop applies a policy's decision through these) ------------------
    def allocate(self, request_id: str, num_tokens: int) -> None:
        """New device table with room for `num_tokens` tokens."""
        if request_id in self.tables:
            raise ValueError(f"request {request_id!r}: already has a block table")
        need = self.blocks_for(num_tokens)
        if need > self.device.num_free:
            raise RuntimeError(f"request {request_id!r}: needs {need} blocks, {self.device.num_free} free")
        blocks = [self.device.allocate() for _ in range(need)]
        self.tables[request_id] = BlockTable(blocks, num_tokens, KV_DEVICE)

    def append(self, request_id: str, num_tokens: int) -> CopyPlan:
        """Grow a device table to `num_tokens` slots; returns device copies for copy-on-write."""
        table = self.tables[request_id]
        if table.location is not KV_DEVICE:
            raise ValueError(f"request {request_id!r}: KV is on the host; swap it in first")
        have = table.num_tokens
        if num_tokens <= have:
            return []
        blocks = table.blocks
        # hot path (most decode steps): the new slots fit in blocks the table already holds and its
        # partial last block is not shared, so no block moves; the general path below gives the same
        if num_tokens <= (len(blocks) + table.num_evicted) * self.block_size and (
            not table.copies_tail or have % self.block_size == 0 or self.device.refcount[blocks[-1]] <= 1
        ):
            table.num_tokens = num_tokens
            return []
        target = self.blocks_for(num_tokens) - table.num_evicted
        cow = self._shared_partial_tail(table)
        need = max(0, target - len(table.blocks)) + int(cow)
        if need > self.device.num_free:
            raise RuntimeError(f"request {request_id!r}: needs {need} blocks, {self.device.num_free} free")
        copies: CopyPlan = []
        if cow:
            old = table.blocks[-1]
            new = self.device.allocate()
            self.device.decref(old)
            table.blocks[-1] = new
            copies.append((old, new))
        for _ in range(target - len(table.blocks)):
            table.blocks.append(self.device.allocate())
        table.num_tokens = num_tokens
        return copies

    def truncate(self, request_id: str, num_tokens: int) -> None:
        """Shrink a device table to `num_tokens` slots (rejected speculative tokens), freeing the blocks
        past them; the slots kept are unchanged."""
        table = self.tables[request_id]
        if table.location is not KV_DEVICE or num_tokens > table.num_tokens:
            raise ValueError(f"request {request_id!r}: can only shrink a device table")
        keep = self.blocks_for(num_tokens) - table.num_evicted
        for b in table.blocks[keep:]:
            self.device.decref(b)
        del table.blocks[keep:]
        table.num_tokens = num_tokens

    def free(self, request_id: str) -> None:
        table = self.tables.pop(request_id, None)
        if table is None:
            return
        pool = self.device if table.location is KV_DEVICE else self.host
        for b in table.blocks:
            pool.decref(b)

    def fork(self, src_id: str, dst_id: str) -> None:
        """`dst` shares all of `src`'s device blocks (e.g. a prompt's); `dst` copies the partly filled
        last block before it writes into it, `src` fills it in place if it is its sole writer so far."""
        src = self.tables[src_id]
        if src.location is not KV_DEVICE or dst_id in self.tables:
            raise ValueError(f"fork: {src_id!r} must be on device and {dst_id!r} new")
        if src.blocks and self.device.refcount[src.blocks[-1]] == 1:
            src.copies_tail = False  # it alone holds its last block: it owns the slots not yet filled
        for b in src.blocks:
            self.device.incref(b)
        self.tables[dst_id] = BlockTable(list(src.blocks), src.num_tokens, KV_DEVICE, copies_tail=True,
                                         cached=list(src.cached), num_evicted=src.num_evicted)

    # ---- prefix caching ------------------------------------------------------------------------
    def acquire_cached(self, request_id: str, token_ids: Sequence[int]) -> int:
        """A new request's table starts with the cached blocks of its longest cached prefix; returns the
        tokens they hold (0 without a hit or a cache). At least the last prompt token is left to compute:
        its logits give the first output token."""
        cache = self.prefix_cache
        if cache is None or request_id in self.tables:
            return 0
        hits = cache.match(token_ids, (len(token_ids) - 1) // self.block_size)
        cache.queried_tokens += len(token_ids)
        if not hits:
            return 0
        for block, _ in hits:
            self.device.take(block)
        num_tokens = len(hits) * self.block_size
        cache.hit_tokens += num_tokens
        self.tables[request_id] = BlockTable([b for b, _ in hits], num_tokens, KV_DEVICE,
                                             cached=[e for _, e in hits])
        return num_tokens

    def register_computed(self, request_id: str, prompt: list[int], output: list[int],
                          num_computed: int) -> None:
        """Enter the request's full device blocks whose KV is now computed (of prompt + output tokens)
        into the prefix cache."""
        table = self.tables.get(request_id)
        if self.prefix_cache is None or table is None or table.location is not KV_DEVICE \
                or num_computed // self.block_size <= len(table.cached):
            return
        bs, cached, token_ids = self.block_size, table.cached, prompt + output
        for k in range(len(cached), num_computed // bs):
            parent = cached[-1] if cached else ROOT
            tokens = tuple(token_ids[k * bs:(k + 1) * bs])
            cached.append(self.prefix_cache.insert(table.blocks[k], parent, tokens))

    def swap_out(self, request_id: str) -> CopyPlan:
        """Move a table to the host pool; returns [(device_block, host_block)]."""
        if not self.can_swap_out(request_id):
            raise RuntimeError(f"request {request_id!r}: cannot swap out (not on device, shared, host full)")
        return self._move(self.tables[request_id], self.device, self.host, KV_HOST)

    def swap_in(self, request_id: str) -> CopyPlan:
        """Move a table back to the device pool; returns [(host_block, device_block)]."""
        if not self.can_swap_in(request_id):
            raise RuntimeError(f"request {request_id!r}: cannot swap in (not on host, or device full)")
        return self._move(self.tables[request_id], self.host, self.device, KV_DEVICE)

    # ---- audit ---------------------------------------------------------------------------------
    def check_invariants(self) -> None:
        """No leak, no double use, refcounts = references, tables sized to their tokens."""
        for pool, loc in ((self.device, KV_DEVICE), (self.host, KV_HOST)):
            refs = [0] * pool.num_blocks
            for rid, t in self.tables.items():
                if t.location is not loc:
                    continue
                _check(len(set(t.blocks)) == len(t.blocks), f"{rid}: block listed twice in its table")
                _check(len(t.blocks) + t.num_evicted == self.blocks_for(t.num_tokens),
                       f"{rid}: table not sized to tokens")
                for b in t.blocks:
                    _check(0 <= b < pool.num_blocks, f"{rid}: block {b} outside its pool")
                    refs[b] += 1
            if loc is KV_DEVICE:  # a shared, partly filled block has at most one writer in place
                writers = [t.blocks[-1] for t in self.tables.values() if t.location is loc and t.blocks
                           and t.num_tokens % self.block_size and not t.copies_tail]
                shared = [b for b in writers if refs[b] > 1]
                _check(len(set(shared)) == len(shared), "a shared block has two in-place writers")
            _check(pool.num_shared == sum(r > 1 for r in refs), f"{loc.value}: num_shared is off")
            if loc is KV_DEVICE and self.prefix_cache is not None:
                for block, (key, _) in self.prefix_cache.entry.items():
                    _check(0 <= block < pool.num_blocks and self.prefix_cache.by_key.get(key) == block,
                           f"prefix cache: block {block} and its key disagree")
            free = set(pool.free)
            _check(len(free) == len(pool.free), f"{loc.value}: a block is on the free list twice")
            for b in range(pool.num_blocks):
                _check(refs[b] == pool.refcount[b],
                       f"{loc.value} block {b}: refcount {pool.refcount[b]} != {refs[b]} references")
                _check((b in free) == (refs[b] == 0), f"{loc.value} block {b}: leaked or used while free")

    # ---- helpers -------------------------------------------------------------------------------
    def _shared_partial_tail(self, table: BlockTable) -> bool:
        return (table.copies_tail and bool(table.blocks) and table.num_tokens % self.block_size != 0
                and self.device.refcount[table.blocks[-1]] > 1)

    @staticmethod
    def _move(table: BlockTable, src: BlockPool, dst: BlockPool, loc: KVLocation) -> CopyPlan:
        plan = []
        for i, b in enumerate(table.blocks):
            nb = dst.allocate()
            src.decref(b)
            table.blocks[i] = nb
            plan.append((b, nb))
        table.location = loc
        return plan
