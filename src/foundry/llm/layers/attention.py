"""Grouped-query attention over a paged KV cache.

A batch is a flat run of `T` tokens from several sequences. The caller orders it as: all decode
tokens first (one query token per sequence), then prefill chunks (several query tokens per
sequence, possibly continuing after tokens already in the cache). `AttentionMetadata` says where
each token's K/V goes in the cache (`slot_mapping`, slot = block * block_size + offset) and which
blocks each sequence reads. It is built once per step by the caller and passed explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from foundry.llm.layers.rotary import apply_rotary


@dataclass
class AttentionMetadata:
    """Per-step attention layout. `kv_caches=None` runs dense causal attention (fresh prefills only)."""

    slot_mapping: torch.Tensor | None  # [T] int64
    block_size: int
    num_decode_tokens: int = 0
    decode_block_tables: torch.Tensor | None = None  # [B, max_blocks] int64, padded with 0
    decode_mask: torch.Tensor | None = None  # [B, 1, 1, max_blocks * block_size] bool
    prefill_query_lens: list[int] = field(default_factory=list)
    prefill_context_lens: list[int] = field(default_factory=list)  # cached + new tokens
    prefill_block_tables: list[torch.Tensor] = field(default_factory=list)  # each [num_blocks] int64

    @classmethod
    def dense(cls, seq_lens: list[int]) -> AttentionMetadata:
        """Metadata for fresh prefills with no cache (each sequence attends only to itself)."""
        return cls(slot_mapping=None, block_size=1, prefill_query_lens=list(seq_lens),
                   prefill_context_lens=list(seq_lens))


def _gather(cache: torch.Tensor, block_table: torch.Tensor, length: int) -> torch.Tensor:
    """cache: [N, bs, Hkv, D]; block_table: [nb] -> [Hkv, length, D]."""
    kv = cache[block_table].flatten(0, 1)[:length]
    return kv.transpose(0, 1)


def paged_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor | None,
    v_cache: torch.Tensor | None,
    meta: AttentionMetadata,
    scale: float,
) -> torch.Tensor:
    """q: [T, H, D]; k, v: [T, Hkv, D] (this step's tokens, already written to the cache).

    Returns [T, H, D]. Decode tokens are batched into one padded call; prefill chunks run one
    sequence at a time (a fresh prompt uses its own K/V directly with a causal mask).
    """
    out = torch.empty_like(q)
    nd = meta.num_decode_tokens
    if nd:
        assert k_cache is not None and v_cache is not None
        bt = meta.decode_block_tables  # [B, nb]
        kd = k_cache[bt].flatten(1, 2).transpose(1, 2)  # [B, Hkv, L, D]
        vd = v_cache[bt].flatten(1, 2).transpose(1, 2)
        qd = q[:nd].unsqueeze(2)  # [B, H, 1, D]
        o = F.scaled_dot_product_attention(qd, kd, vd, attn_mask=meta.decode_mask, scale=scale,
                                           enable_gqa=True)
        out[:nd] = o.squeeze(2)
    start = nd
    for i, (qlen, ctx) in enumerate(zip(meta.prefill_query_lens, meta.prefill_context_lens, strict=True)):
        qs = q[start:start + qlen].transpose(0, 1)  # [H, qlen, D]
        if ctx == qlen:  # nothing cached before this chunk: attend to this step's own K/V
            ks = k[start:start + qlen].transpose(0, 1)
            vs = v[start:start + qlen].transpose(0, 1)
            o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale, enable_gqa=True)
        else:  # continuation (chunked prefill, recompute): read the prefix from the cache
            assert k_cache is not None and v_cache is not None
            bt = meta.prefill_block_tables[i]
            ks, vs = _gather(k_cache, bt, ctx), _gather(v_cache, bt, ctx)
            qpos = torch.arange(ctx - qlen, ctx, device=q.device)
            mask = qpos[:, None] >= torch.arange(ctx, device=q.device)[None, :]  # [qlen, ctx]
            o = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale, enable_gqa=True)
        out[start:start + qlen] = o.transpose(0, 1)
        start += qlen
    return out


class Attention(nn.Module):
    def __init__(self, hidden: int, num_heads: int, num_kv_heads: int, head_dim: int,
                 qkv_bias: bool = False, o_bias: bool = False) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, num_heads * head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(hidden, num_kv_heads * head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(hidden, num_kv_heads * head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(num_heads * head_dim, hidden, bias=o_bias)
        self.scale = head_dim**-0.5

    def forward(
        self,
        x: torch.Tensor,  # [T, hidden]
        cos: torch.Tensor,  # [T, D]
        sin: torch.Tensor,
        kv_cache: tuple[torch.Tensor, torch.Tensor] | None,  # each [N, bs, Hkv, D]
        meta: AttentionMetadata,
    ) -> torch.Tensor:
        T = x.shape[0]
        q = apply_rotary(self.q_proj(x).view(T, self.num_heads, self.head_dim), cos, sin)
        k = apply_rotary(self.k_proj(x).view(T, self.num_kv_heads, self.head_dim), cos, sin)
        v = self.v_proj(x).view(T, self.num_kv_heads, self.head_dim)
        k_cache = v_cache = None
        if kv_cache is not None:
            k_cache, v_cache = kv_cache
            k_cache.view(-1, self.num_kv_heads, self.head_dim)[meta.slot_mapping] = k
            v_cache.view(-1, self.num_kv_heads, self.head_dim)[meta.slot_mapping] = v
        o = paged_attention(q, k, v, k_cache, v_cache, meta, self.scale)
        return self.o_proj(o.reshape(T, self.num_heads * self.head_dim))
