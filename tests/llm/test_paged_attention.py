"""Paged attention over scattered blocks equals dense causal attention written out by hand."""

import math

import torch

from foundry.llm.layers.attention import AttentionMetadata, DecodeGroup, paged_attention, write_kv


def dense_reference(q, k, v):
    """q: [S, H, D], k/v: [S, Hkv, D]; explicit causal softmax attention with GQA head sharing."""
    S, H, D = q.shape
    group = H // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(D)
    scores = scores.masked_fill(torch.ones(S, S, dtype=torch.bool).triu(1), float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


def test_mixed_batch_of_decodes_and_chunks_equals_dense():
    g = torch.Generator().manual_seed(0)
    H, Hkv, D, bs, num_blocks = 4, 2, 8, 4, 40
    k_cache = torch.zeros(Hkv, num_blocks, bs, D)
    v_cache = torch.zeros(Hkv, num_blocks, bs, D)
    free = torch.randperm(num_blocks, generator=g).tolist()
    # (cached tokens before this step, tokens computed this step); decodes first
    plan = [(5, 1), (12, 1), (1, 1), (0, 7), (6, 9), (0, 1)]
    seqs = []
    for cached, new in plan:
        total = cached + new
        table = torch.tensor([free.pop() for _ in range(-(-total // bs))])
        q = torch.randn(total, H, D, generator=g)
        k = torch.randn(total, Hkv, D, generator=g)
        v = torch.randn(total, Hkv, D, generator=g)
        slots = table[torch.arange(total) // bs] * bs + torch.arange(total) % bs
        write_kv(k_cache, slots[:cached], k[:cached])  # earlier steps wrote the prefix
        write_kv(v_cache, slots[:cached], v[:cached])
        seqs.append((cached, new, table, q, k, v, slots))
    decode = [s for s in seqs if s[1] == 1 and s[0] > 0]
    prefill = [s for s in seqs if not (s[1] == 1 and s[0] > 0)]
    def group(seqs):  # decodes attended together, padded to the widest block table
        width = max(len(s[2]) for s in seqs)
        pad = [torch.zeros(width - len(s[2]), dtype=torch.long) for s in seqs]
        tables = torch.stack([torch.cat([s[2], p]) for s, p in zip(seqs, pad, strict=True)])
        mask = torch.arange(width * bs)[None] < torch.tensor([s[0] + 1 for s in seqs])[:, None]
        return DecodeGroup(len(seqs), tables, mask[:, None, None, :])

    meta = AttentionMetadata(
        slot_mapping=torch.cat([s[6][s[0]:] for s in decode + prefill]), block_size=bs,
        decode_groups=[group(decode[:2]), group(decode[2:])],
        prefill_query_lens=[s[1] for s in prefill], prefill_context_lens=[s[0] + s[1] for s in prefill],
        prefill_block_tables=[s[2] for s in prefill],
    )
    q = torch.cat([s[3][s[0]:] for s in decode + prefill])
    k = torch.cat([s[4][s[0]:] for s in decode + prefill])
    v = torch.cat([s[5][s[0]:] for s in decode + prefill])
    write_kv(k_cache, meta.slot_mapping, k)  # what Attention.forward does before attending
    write_kv(v_cache, meta.slot_mapping, v)
    out = paged_attention(q, k, v, k_cache, v_cache, meta, D**-0.5)
    expected = torch.cat([dense_reference(s[3], s[4], s[5])[s[0]:] for s in decode + prefill])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_dense_metadata_runs_without_a_cache():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(10, 4, 8, generator=g)
    k, v = torch.randn(10, 2, 8, generator=g), torch.randn(10, 2, 8, generator=g)
    out = paged_attention(q, k, v, None, None, AttentionMetadata.dense([3, 7]), 8**-0.5)
    expected = torch.cat([dense_reference(q[:3], k[:3], v[:3]), dense_reference(q[3:], k[3:], v[3:])])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
