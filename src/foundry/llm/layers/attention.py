"""Grouped-query attention over a paged KV cache.

A batch is a flat run of `T` tokens from several sequences. The caller orders it as: decode
tokens first (one query token per sequence), in groups of similar context length, then prefill
chunks (several query tokens per sequence, possibly continuing after tokens already in the cache).
`AttentionMetadata` says where each token's K/V goes in the cache (`slot_mapping`, slot =
block * block_size + offset) and which blocks each sequence reads. It is built once per step by the
caller and passed explicitly.

Cache layout per layer: `[num_kv_heads, num_blocks, block_size, head_dim]`. Gathering a sequence's
blocks then yields `[kv_heads, context, head_dim]` with contiguous rows, the layout attention wants,
without a transposing copy (about 30% faster decode attention on CPU than `[blocks, block_size,
kv_heads, head_dim]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from foundry.llm.layers.rotary import apply_rotary
from foundry.llm.partial_attention import prefix_causal_attention


@dataclass
class DecodeGroup:
    """Sequences attended in one padded call, each with `query_len` new tokens over its cache (1: decode;
    more: a speculative verification chunk): `block_tables` [B, max_blocks], `mask` [B, 1, query_len, L]."""

    num_seqs: int
    block_tables: torch.Tensor
    mask: torch.Tensor
    query_len: int = 1


@dataclass
class AttentionMetadata:
    """Per-step attention layout. `kv_caches=None` runs dense causal attention (fresh prefills only)."""

    slot_mapping: torch.Tensor | None  # [T] int64
    block_size: int
    decode_groups: list[DecodeGroup] = field(default_factory=list)
    prefill_query_lens: list[int] = field(default_factory=list)
    prefill_context_lens: list[int] = field(default_factory=list)  # cached + new tokens
    prefill_block_tables: list[torch.Tensor] = field(default_factory=list)  # each [num_blocks] int64

    @classmethod
    def dense(cls, seq_lens: list[int]) -> AttentionMetadata:
        """Metadata for fresh prefills with no cache (each sequence attends only to itself)."""
        return cls(slot_mapping=None, block_size=1, prefill_query_lens=list(seq_lens),
                   prefill_context_lens=list(seq_lens))


    @property
    def num_decode_tokens(self) -> int:
        return sum(g.num_seqs for g in self.decode_groups)


def write_kv(cache: torch.Tensor, slots: torch.Tensor, x: torch.Tensor) -> None:
    """cache: [Hkv, N, bs, D]; x: [T, Hkv, D] written at flat slots [T]."""
    cache.view(cache.shape[0], -1, cache.shape[-1])[:, slots] = x.transpose(0, 1)


def _gather(cache: torch.Tensor, block_table: torch.Tensor, length: int) -> torch.Tensor:
    """cache: [Hkv, N, bs, D]; block_table: [nb] -> [Hkv, length, D]."""
    return cache[:, block_table].flatten(1, 2)[:, :length]


def _gather_batch(cache: torch.Tensor, block_tables: torch.Tensor) -> torch.Tensor:
    """cache: [Hkv, N, bs, D]; block_tables: [B, nb] -> [B, Hkv, nb * bs, D]."""
    return cache[:, block_tables].transpose(0, 1).flatten(2, 3)


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
    # pieces are concatenated, not written into a preallocated output: under autograd (the RL trainer's
    # dense forward) each slice assignment costs a full-size zero fill in backward
    outs: list[torch.Tensor] = []
    start = 0
    for g in meta.decode_groups:
        assert k_cache is not None and v_cache is not None
        kd, vd = _gather_batch(k_cache, g.block_tables), _gather_batch(v_cache, g.block_tables)
        b, n = g.num_seqs, g.query_len
        qd = q[start:start + b * n].view(b, n, *q.shape[1:]).transpose(1, 2)  # [B, H, n, D]
        o = F.scaled_dot_product_attention(qd, kd, vd, attn_mask=g.mask, scale=scale, enable_gqa=True)
        outs.append(o.transpose(1, 2).reshape(b * n, *q.shape[1:]))
        start += b * n
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
            o = prefix_causal_attention(qs, ks, vs, scale=scale)  # query i sees keys 0 .. ctx - qlen + i
        outs.append(o.transpose(0, 1))
        start += qlen
    return outs[0] if len(outs) == 1 else torch.cat(outs)


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
        kv_cache: tuple[torch.Tensor, torch.Tensor] | None,  # each [Hkv, N, bs, D]
        meta: AttentionMetadata,
    ) -> torch.Tensor:
        T = x.shape[0]
        q = apply_rotary(self.q_proj(x).view(T, self.num_heads, self.head_dim), cos, sin)
        k = apply_rotary(self.k_proj(x).view(T, self.num_kv_heads, self.head_dim), cos, sin)
        v = self.v_proj(x).view(T, self.num_kv_heads, self.head_dim)
        k_cache = v_cache = None
        if kv_cache is not None:
            k_cache, v_cache = kv_cache
            write_kv(k_cache, meta.slot_mapping, k)
            write_kv(v_cache, meta.slot_mapping, v)
        o = paged_attention(q, k, v, k_cache, v_cache, meta, self.scale)
        return self.o_proj(o.reshape(T, self.num_heads * self.head_dim))
