"""The cache engine executes copy plans exactly: swap out and back in restores every KV value."""

import torch

from foundry.llm import ModelConfig
from foundry.serve.block_manager import BlockManager
from foundry.serve.cache_engine import CacheEngine, kv_bytes_per_token


def test_swap_round_trip_and_block_transfer():
    cfg = ModelConfig(vocab_size=10, hidden_size=16, intermediate_size=16, num_layers=2, num_heads=2,
                      num_kv_heads=1)
    cache = CacheEngine(cfg, block_size=4, num_device_blocks=6, num_host_blocks=4, device="cpu",
                        dtype=torch.float32)
    assert kv_bytes_per_token(cfg, torch.float32) == 2 * 2 * 1 * 8 * 4
    bm = BlockManager(4, 6, 4)
    bm.allocate("a", 10)
    blocks = list(bm.block_ids("a"))
    cache.device_cache.normal_()
    original = cache.read_blocks(blocks)
    cache.swap_out(bm.swap_out("a"))
    bm.allocate("b", 24)  # takes every device block, overwriting a's old ones
    cache.device_cache.zero_()
    bm.free("b")
    cache.swap_in(bm.swap_in("a"))
    torch.testing.assert_close(cache.read_blocks(bm.block_ids("a")), original)
    other = CacheEngine(cfg, 4, 6, 0, "cpu", torch.float32)  # another instance: move KV over
    other.write_blocks([5, 0, 2], original)
    torch.testing.assert_close(other.read_blocks([5, 0, 2]), original)
    layer_k, layer_v = cache.layer_caches()[1]
    assert layer_k.shape == (1, 6, 4, 8) and layer_k.data_ptr() == cache.device_cache[1, 0].data_ptr()
