"""The KV tensors of both pools, and the copies between them. Decides nothing.

Layout per pool: `[num_layers, 2 (K, V), num_kv_heads, num_blocks, block_size, head_dim]` (the
attention layer's layout, see `foundry.llm.layers.attention`); blocks are indexed on dim 3.
Copy plans come from the block manager.
`read_blocks`/`write_blocks` move a request's KV out of and into a pool as one tensor, which is
what handing KV between engine instances needs.
"""

from __future__ import annotations

import torch

from foundry.llm.config import ModelConfig
from foundry.serve.memory_plan import MemoryPlan


def kv_bytes_per_token(cfg: ModelConfig, dtype: torch.dtype) -> int:
    return cfg.num_layers * 2 * cfg.num_kv_heads * cfg.head_dim * torch.empty((), dtype=dtype).element_size()


class CacheEngine:
    def __init__(self, cfg: ModelConfig, block_size: int, num_device_blocks: int, num_host_blocks: int,
                 device: torch.device | str, dtype: torch.dtype) -> None:
        shape = (cfg.num_layers, 2, cfg.num_kv_heads)
        tail = (block_size, cfg.head_dim)
        self.device = torch.device(device)
        self.device_cache = torch.zeros(*shape, num_device_blocks, *tail, device=self.device, dtype=dtype)
        pin = self.device.type == "cuda"
        self.host_cache = torch.zeros(*shape, num_host_blocks, *tail, dtype=dtype, pin_memory=pin)
        self.num_layers = cfg.num_layers

    def layer_caches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (K, V) views, each [num_kv_heads, num_blocks, block_size, head_dim]."""
        return [(self.device_cache[i, 0], self.device_cache[i, 1]) for i in range(self.num_layers)]

    @staticmethod
    def _copy(src: torch.Tensor, dst: torch.Tensor, plan: list[tuple[int, int]]) -> None:
        if not plan:
            return
        s = torch.tensor([a for a, _ in plan], device=src.device)
        d = torch.tensor([b for _, b in plan], device=dst.device)
        dst[:, :, :, d] = src[:, :, :, s].to(dst.device, non_blocking=True)

    def swap_out(self, plan: list[tuple[int, int]]) -> None:
        """plan: [(device_block, host_block)]."""
        self._copy(self.device_cache, self.host_cache, plan)

    def swap_in(self, plan: list[tuple[int, int]]) -> None:
        """plan: [(host_block, device_block)]."""
        self._copy(self.host_cache, self.device_cache, plan)

    def copy(self, plan: list[tuple[int, int]]) -> None:
        """Device-to-device block copies (copy-on-write)."""
        self._copy(self.device_cache, self.device_cache, plan)

    def execute(self, plan: MemoryPlan) -> None:
        """Run a step's copies in the one safe order (see `memory_plan`)."""
        self.swap_out(plan.swap_out)
        self.swap_in(plan.swap_in)
        self.copy(plan.copy_on_write)

    def read_blocks(self, blocks: list[int], pool: str = "device") -> torch.Tensor:
        """[num_layers, 2, Hkv, len(blocks), block_size, D] copy of blocks of the device or host pool."""
        cache = self.device_cache if pool == "device" else self.host_cache
        return cache[:, :, :, torch.tensor(blocks, device=cache.device)].clone()

    def write_blocks(self, blocks: list[int], kv: torch.Tensor) -> None:
        self.device_cache[:, :, :, torch.tensor(blocks, device=self.device)] = kv.to(self.device)
