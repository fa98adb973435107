"""Prefix caching: full device KV blocks found again by their content, reused across requests.

A block's content is its tokens *and* everything before them, so a cached block is keyed by
(its parent's entry id, its tokens): exact chaining with no hash collisions (an entry id is never
reused). Only full blocks whose KV is computed are entered. A cached block whose last user left keeps
its content on the free list, in least-recently-freed order; it is evicted (forgotten) when the
pool hands it out again. Torch-free: the block manager owns it and calls it.
"""

from __future__ import annotations

from collections.abc import Sequence

ROOT = 0  # the parent entry of a request's first block


class PrefixCache:
    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.by_key: dict[tuple[int, tuple[int, ...]], int] = {}  # (parent entry, tokens) -> block
        self.entry: dict[int, tuple[tuple[int, tuple[int, ...]], int]] = {}  # block -> (key, entry id)
        self._next_id = ROOT + 1
        self.queried_tokens = 0  # prompt tokens looked up
        self.hit_tokens = 0  # of those, found cached

    @property
    def num_cached_blocks(self) -> int:
        return len(self.entry)

    @property
    def hit_rate(self) -> float:
        return self.hit_tokens / self.queried_tokens if self.queried_tokens else 0.0

    def match(self, token_ids: Sequence[int], max_blocks: int) -> list[tuple[int, int]]:
        """The cached (block, entry id) chain of the longest cached prefix, at most `max_blocks` long."""
        bs, parent, out = self.block_size, ROOT, []
        for k in range(max_blocks):
            block = self.by_key.get((parent, tuple(token_ids[k * bs:(k + 1) * bs])))
            if block is None:
                break
            parent = self.entry[block][1]
            out.append((block, parent))
        return out

    def insert(self, block: int, parent: int, tokens: tuple[int, ...]) -> int:
        """Enter a computed full block; the entry id of its content (an existing one if the same content
        is cached in another block already, which then stays the cached copy)."""
        key = (parent, tokens)
        cached = self.by_key.get(key)
        if cached is not None:
            return self.entry[cached][1]
        if block in self.entry:  # (cannot happen: a block holds one content) keep the first entry
            return self.entry[block][1]
        entry_id, self._next_id = self._next_id, self._next_id + 1
        self.by_key[key] = block
        self.entry[block] = (key, entry_id)
        return entry_id

    def evict(self, block: int) -> None:
        """The pool reuses `block` for other KV: forget its content."""
        found = self.entry.pop(block, None)
        if found is not None:
            del self.by_key[found[0]]
