"""ESP prefill on one instance of a ring: striped queries, KV blocks passed round, online-softmax merge.

A batch of prompts is striped over the ring's `n` instances: position ``t`` of each prompt is computed
by ring member ``t mod n`` (balanced causal work). Per layer, each member computes Q, K, V for its own
positions; then, `n` times, it attends its queries to the KV block in hand (`partial_attention` with the
causal rule on global positions), folds the partial into its running output by log-sum-exp
(`merge_partials`), keeps the rows of the block that the migration plan assigns to it in its KV pool,
and passes the block to the next member while receiving the previous member's. After `n` passes every
member has seen every position once: the output is exact attention, and every position's KV is kept by
exactly one instance (the plan's), at no extra transfer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from foundry.llm.layers.rotary import apply_rotary
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.llm.partial_attention import causal_block_attention, merge_partials
from foundry.serve.elastic.comm import Comm
from foundry.serve.elastic.kv_pool import KVPool
from foundry.serve.elastic.placement import KVRange


@dataclass(frozen=True, slots=True)
class PrefillWork:
    """What every ring member is told: the prompts, the ring, where each prompt's KV is kept."""

    request_ids: tuple[str, ...]
    tokens: tuple[tuple[int, ...], ...]
    ring: tuple[int, ...]
    keep: dict[str, tuple[KVRange, ...]]


def striped(length: int, member: int, n: int) -> torch.Tensor:
    """The positions ring member `member` of `n` computes: member, member + n, ..."""
    return torch.arange(member, max(member, length), n)


@torch.no_grad()
def ring_prefill(model: LlamaForCausalLM, pool: KVPool, comm: Comm,
                 work: PrefillWork) -> dict[str, torch.Tensor]:
    """Run the batch's prefill as ring member `comm.rank`; returns the logits ``[vocab]`` of each prompt
    whose last position this member computed (the coordinator gathers them from the members)."""
    n = len(work.ring)
    me = work.ring.index(comm.rank)
    nxt, prv = work.ring[(me + 1) % n], work.ring[(me - 1) % n]
    lengths = [len(t) for t in work.tokens]
    mine = [striped(L, me, n) for L in lengths]  # my positions per prompt
    seg = [[len(range(m, L, n)) for L in lengths] for m in range(n)]  # rows per prompt in member m's block
    ids = torch.cat([torch.tensor(t, dtype=torch.long)[p] for t, p in zip(work.tokens, mine, strict=True)])
    positions = torch.cat(mine)
    slot_of = [_keep_slots(pool, rid, L, work.keep.get(rid, ()), comm.rank)
               for rid, L in zip(work.request_ids, lengths, strict=True)]

    cfg = model.config
    inner = model.model
    x = inner.embed_tokens(ids)
    cos, sin = inner.rotary(positions)
    for li, layer in enumerate(inner.layers):
        attn = layer.self_attn
        h = layer.input_layernorm(x)
        T = h.shape[0]
        q = apply_rotary(attn.q_proj(h).view(T, cfg.num_heads, cfg.head_dim), cos, sin)
        k = apply_rotary(attn.k_proj(h).view(T, cfg.num_kv_heads, cfg.head_dim), cos, sin)
        v = attn.v_proj(h).view(T, cfg.num_kv_heads, cfg.head_dim)
        block = torch.stack([k, v])  # [2, T, Hkv, D]: what travels round the ring
        outs: list[torch.Tensor | None] = [None] * len(lengths)
        lses: list[torch.Tensor | None] = [None] * len(lengths)
        for step in range(n):
            src = (me - step) % n  # the member whose positions this block holds
            incoming = None
            if step < n - 1:  # start the pass now; it overlaps this block's attention
                incoming = torch.empty(2, sum(seg[(src - 1) % n]), cfg.num_kv_heads, cfg.head_dim,
                                       dtype=block.dtype)
            works = _start(comm, block, nxt, incoming, prv)
            qoff = koff = 0
            for i, L in enumerate(lengths):
                nq, nk = seg[me][i], seg[src][i]
                if nk:
                    kpos = striped(L, src, n)
                    kb, vb = block[0, koff:koff + nk], block[1, koff:koff + nk]
                    _keep(pool, li, slot_of[i], kpos, kb, vb)
                    if nq:
                        o, lse = _attend(q[qoff:qoff + nq], kb, vb, me, src, attn.scale)
                        if outs[i] is None:
                            outs[i], lses[i] = o, lse
                        else:
                            outs[i], lses[i] = merge_partials([outs[i], o], [lses[i], lse])
                qoff, koff = qoff + nq, koff + nk
            for w in works:
                w.wait()
            if incoming is not None:
                block = incoming
        o = torch.cat([t.transpose(0, 1) for t in outs if t is not None])  # [T, H, D]
        x = x + attn.o_proj(o.reshape(T, cfg.num_heads * cfg.head_dim))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    x = inner.norm(x)
    logits: dict[str, torch.Tensor] = {}
    off = 0
    for i, (rid, L) in enumerate(zip(work.request_ids, lengths, strict=True)):
        if (L - 1) % n == me:
            logits[rid] = model.compute_logits(x[off + seg[me][i] - 1:off + seg[me][i]])[0]
        off += seg[me][i]
    return logits


def _start(comm: Comm, block: torch.Tensor, nxt: int, incoming: torch.Tensor | None, prv: int) -> list:
    if incoming is None:
        return []
    works = [comm.irecv(incoming, prv)] if incoming.numel() else []
    if block.numel():
        works.append(comm.isend(block, nxt))
    return works


def _keep_slots(pool: KVPool, request_id: str, length: int, keep: tuple[KVRange, ...],
                me: int) -> torch.Tensor:
    """slot_of[position] for the positions this instance keeps (allocated now), -1 elsewhere."""
    slot_of = torch.full((length,), -1, dtype=torch.long)
    mine = [torch.arange(r.start, r.stop) for r in keep if r.instance == me]
    if mine:
        pos = torch.cat(mine)
        slot_of[pos] = pool.allocate(request_id, pos)
    return slot_of


def _keep(pool: KVPool, layer: int, slot_of: torch.Tensor, kpos: torch.Tensor, kb: torch.Tensor,
          vb: torch.Tensor) -> None:
    slots = slot_of[kpos]
    sel = slots >= 0
    if bool(sel.any()):
        pool.write(layer, slots[sel], kb[sel], vb[sel])


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, me: int, src: int,
            scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Member `me`'s queries ``[nq, H, D]`` over member `src`'s block of the same prompt: (out ``[H, nq,
    D]``, lse). Query i sits at me + n·i and key j at src + n·j, so i sees j iff j <= i when src <= me,
    and iff j <= i - 1 when src > me: a causal block, shifted by one below the diagonal."""
    return causal_block_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                                  diagonal=0 if src <= me else -1, scale=scale)
