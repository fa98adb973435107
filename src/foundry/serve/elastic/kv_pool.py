"""One instance's KV slots: `[layers, kv_heads, slots, head_dim]` for K and V, and which request
position lives in which slot. Slots are addressed per instance; the cluster's `Placement` says which
instance holds which positions, this says where on the instance."""

from __future__ import annotations

import torch


class KVPool:
    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, num_slots: int,
                 dtype: torch.dtype = torch.float32) -> None:
        shape = (num_layers, num_kv_heads, num_slots, head_dim)
        self.k, self.v = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)
        self.num_slots = num_slots
        self._free = list(range(num_slots - 1, -1, -1))  # a stack: pop() hands out low slots first
        self._positions: dict[str, torch.Tensor] = {}  # request → positions held here, ascending
        self._slots: dict[str, torch.Tensor] = {}  # request → the slot of each of those positions

    @property
    def num_free(self) -> int:
        return len(self._free)

    def positions(self, request_id: str) -> torch.Tensor:
        return self._positions.get(request_id, torch.empty(0, dtype=torch.long))

    def requests(self) -> list[str]:
        return list(self._positions)

    def allocate(self, request_id: str, positions: torch.Tensor) -> torch.Tensor:
        """Slots for new positions of a request (after any it holds); returns them in the given order."""
        n = int(positions.numel())
        if n > len(self._free):
            raise RuntimeError(f"KV pool: {request_id} needs {n} slots, {len(self._free)} free")
        slots = torch.tensor([self._free.pop() for _ in range(n)], dtype=torch.long)
        if request_id in self._positions:
            pos = torch.cat([self._positions[request_id], positions])
            sl = torch.cat([self._slots[request_id], slots])
            order = torch.argsort(pos)
            self._positions[request_id], self._slots[request_id] = pos[order], sl[order]
        else:
            order = torch.argsort(positions)
            self._positions[request_id], self._slots[request_id] = positions[order], slots[order]
        return slots

    def write(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """k, v: [n, kv_heads, head_dim] into `slots` [n]."""
        self.k[layer][:, slots] = k.transpose(0, 1)
        self.v[layer][:, slots] = v.transpose(0, 1)

    def read(self, layer: int, request_id: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(k, v ``[kv_heads, n, head_dim]``, positions ``[n]``) of what this instance holds of a request."""
        slots = self._slots[request_id]
        return self.k[layer][:, slots], self.v[layer][:, slots], self._positions[request_id]

    def take(self, request_id: str, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Remove positions start..stop-1 (all held here): their K and V ``[layers, kv_heads, n, D]``."""
        pos, slots = self._positions[request_id], self._slots[request_id]
        sel = (pos >= start) & (pos < stop)
        if int(sel.sum()) != stop - start:
            raise RuntimeError(f"KV pool: {request_id} does not hold all of {start}..{stop - 1} here")
        moved = slots[sel]
        k, v = self.k[:, :, moved].clone(), self.v[:, :, moved].clone()
        self._free.extend(moved.tolist())
        self._keep(request_id, ~sel)
        return k, v

    def put(self, request_id: str, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Receive a migrated range: k, v ``[layers, kv_heads, n, D]`` for positions start..start+n-1."""
        slots = self.allocate(request_id, torch.arange(start, start + k.shape[2]))
        self.k[:, :, slots], self.v[:, :, slots] = k, v

    def free(self, request_id: str) -> None:
        if request_id in self._slots:
            self._free.extend(self._slots.pop(request_id).tolist())
            del self._positions[request_id]

    def _keep(self, request_id: str, keep: torch.Tensor) -> None:
        if bool(keep.any()):
            self._positions[request_id] = self._positions[request_id][keep]
            self._slots[request_id] = self._slots[request_id][keep]
        else:
            del self._positions[request_id], self._slots[request_id]
