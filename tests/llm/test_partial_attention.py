"""Partial attention over KV slices, merged by log-sum-exp, equals one dense attention."""

import pytest
import torch
import torch.nn.functional as F

from foundry.llm.partial_attention import (
    causal_block_attention,
    merge_partials,
    partial_attention,
    prefix_causal_attention,
)

TOL = 1e-5


def random_qkv(g: torch.Generator, q_len: int | None = None):
    """Random shapes: 1-2 sequences, 1-3 KV heads with 1-3 query heads each, head dim 1-16."""
    def randint(lo, hi):  # inclusive
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    num_kv_heads = randint(1, 3)
    num_heads = num_kv_heads * randint(1, 3)
    batch, kv_len, head_dim = randint(1, 2), randint(1, 24), randint(1, 16)
    q_len = randint(1, kv_len) if q_len is None else q_len
    q = torch.randn(batch, num_heads, q_len, head_dim, generator=g)
    k = torch.randn(batch, num_kv_heads, kv_len, head_dim, generator=g)
    v = torch.randn(batch, num_kv_heads, kv_len, head_dim, generator=g)
    return q, k, v, randint(1, 4)


def deal(g: torch.Generator, kv_len: int, num_slices: int) -> list[torch.Tensor]:
    """KV indices dealt at random into `num_slices` slices (not contiguous; a slice may be empty)."""
    owner = torch.randint(0, num_slices, (kv_len,), generator=g)
    return [torch.nonzero(owner == s).flatten() for s in range(num_slices)]


def dense_lse(q, k, visible):
    group = q.shape[-3] // k.shape[-3]
    scores = q @ k.repeat_interleave(group, dim=-3).transpose(-1, -2) * q.shape[-1] ** -0.5
    return torch.logsumexp(scores.masked_fill(~visible, float("-inf")), dim=-1)


def assert_close(got, want):
    assert torch.equal(torch.isneginf(got), torch.isneginf(want))
    finite = ~torch.isneginf(want)
    assert torch.all((got[finite] - want[finite]).abs() <= TOL)


@pytest.mark.parametrize("seed", range(40))
def test_causal_slices_merge_to_dense_sdpa(seed):
    """A prefill chunk's queries at the end of the sequence; the KV dealt into 1-4 slices."""
    g = torch.Generator().manual_seed(seed)
    q, k, v, num_slices = random_qkv(g)
    q_len, kv_len = q.shape[-2], k.shape[-2]
    q_pos, kv_pos = torch.arange(kv_len - q_len, kv_len), torch.arange(kv_len)
    parts = [partial_attention(q, k[..., i, :], v[..., i, :], q_positions=q_pos, kv_positions=kv_pos[i])
             for i in deal(g, kv_len, num_slices)]
    out, lse = merge_partials([o for o, _ in parts], [s for _, s in parts])
    visible = q_pos[:, None] >= kv_pos[None, :]
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=visible, enable_gqa=True)
    assert (out - ref).abs().max() <= TOL
    assert_close(lse, dense_lse(q, k, visible))
    for o, s in parts:  # a row that sees nothing of a slice: lse -inf, output 0
        assert torch.all(o[torch.isneginf(s)] == 0)


def test_a_slice_in_the_future_of_some_queries_is_fully_masked_for_them():
    """Contiguous halves of a causal prompt: the second half is invisible to the first half's queries."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 10, 8, generator=g)
    k, v = torch.randn(2, 1, 2, 10, 8, generator=g)
    pos = torch.arange(10)
    parts = [partial_attention(q, k[..., s, :], v[..., s, :], q_positions=pos, kv_positions=pos[s])
             for s in (slice(0, 5), slice(5, 10))]
    assert torch.isneginf(parts[1][1][..., :5]).all() and torch.isfinite(parts[1][1][..., 5:]).all()
    out, lse = merge_partials([o for o, _ in parts], [s for _, s in parts])
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert (out - ref).abs().max() <= TOL
    assert (lse - dense_lse(q, k, pos[:, None] >= pos[None, :])).abs().max() <= TOL


@pytest.mark.parametrize("seed", range(20))
def test_random_masks_and_rows_masked_in_every_slice(seed):
    """Any boolean mask (per head or shared); a row masked everywhere merges to output 0, lse -inf."""
    g = torch.Generator().manual_seed(1000 + seed)
    q, k, v, num_slices = random_qkv(g)
    (batch, num_heads, q_len, _), kv_len = q.shape, k.shape[-2]
    heads = num_heads if seed % 2 else 1
    mask = torch.rand(batch, heads, q_len, kv_len, generator=g) < 0.5
    mask[..., 0, :] = False  # the first query row sees nothing at all
    slices = deal(g, kv_len, num_slices)
    parts = [partial_attention(q, k[..., i, :], v[..., i, :], attn_mask=mask[..., i]) for i in slices]
    out, lse = merge_partials([o for o, _ in parts], [s for _, s in parts])
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    assert (out - ref).abs().max() <= TOL
    assert torch.all(out[..., 0, :] == 0) and torch.isneginf(lse[..., 0]).all()
    assert_close(lse, dense_lse(q, k, mask))


def test_folding_partials_one_at_a_time_equals_merging_them_at_once():
    """A ring merges each partial as it arrives: merge(merge(a, b), c) == merge(a, b, c)."""
    g = torch.Generator().manual_seed(7)
    q, k, v, _ = random_qkv(g, q_len=6)
    kv_len = k.shape[-2]
    pos = torch.arange(kv_len)
    q_pos = torch.arange(kv_len - 6, kv_len) if kv_len >= 6 else torch.arange(6)
    parts = [partial_attention(q, k[..., i, :], v[..., i, :], q_positions=q_pos, kv_positions=pos[i])
             for i in deal(g, kv_len, 3)]
    out, lse = parts[0]
    for o, s in parts[1:]:
        out, lse = merge_partials([out, o], [lse, s])
    out_all, lse_all = merge_partials([o for o, _ in parts], [s for _, s in parts])
    assert (out - out_all).abs().max() <= TOL
    assert_close(lse, lse_all)


def test_errors_name_the_argument():
    q, k = torch.zeros(1, 3, 2, 4), torch.zeros(1, 2, 2, 4)
    with pytest.raises(ValueError, match="^q: 3 heads"):
        partial_attention(q, k, k)
    with pytest.raises(ValueError, match="^q_positions"):
        partial_attention(q[:, :2], k, k, q_positions=torch.arange(2))
    with pytest.raises(ValueError, match="^outs"):
        merge_partials([], [])


@pytest.mark.parametrize("diagonal", [0, -1])
@pytest.mark.parametrize("shape", [(5, 5), (5, 6), (6, 5), (1, 3), (3, 0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # the fused CPU kernel, and the fallback
def test_causal_block_attention_equals_explicit_partial_attention(diagonal, shape, dtype):
    lq, lk = shape
    g = torch.Generator().manual_seed(lq * 10 + lk)
    q = torch.randn(4, lq, 8, generator=g, dtype=dtype)
    k, v = torch.randn(2, lk, 8, generator=g, dtype=dtype), torch.randn(2, lk, 8, generator=g, dtype=dtype)
    out, lse = causal_block_attention(q, k, v, diagonal=diagonal)
    ref_out, ref_lse = partial_attention(q, k, v, q_positions=torch.arange(lq) + diagonal,
                                         kv_positions=torch.arange(lk))
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.equal(torch.isinf(lse), torch.isinf(ref_lse))
    assert torch.allclose(lse[~torch.isinf(lse)].double(), ref_lse[~torch.isinf(ref_lse)].double(), atol=1e-5)


@pytest.mark.parametrize("q_len, total", [(5, 5), (3, 11), (1, 9), (8, 40)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # the fused CPU kernels, and the fallback
def test_prefix_causal_attention_equals_sdpa_with_the_bottom_right_mask(q_len, total, dtype):
    g = torch.Generator().manual_seed(q_len * 100 + total)
    q = torch.randn(4, q_len, 8, generator=g, dtype=dtype)
    k = torch.randn(2, total, 8, generator=g, dtype=dtype)
    v = torch.randn(2, total, 8, generator=g, dtype=dtype)
    qpos = torch.arange(total - q_len, total)
    mask = qpos[:, None] >= torch.arange(total)[None, :]
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    torch.testing.assert_close(prefix_causal_attention(q, k, v), ref, atol=1e-5, rtol=1e-5)
