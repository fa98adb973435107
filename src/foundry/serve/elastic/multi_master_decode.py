"""ESP decode on one instance: multi-master decoding over KV spread across instances.

Each request of a decode batch has one *master* (the instance that stores its new token's KV and runs
its dense layers) and a set of *holders* (every instance with part of its KV; the master among them).
Per layer, a master computes Q/K/V for its requests and stores the new K/V; it sends each query to the
other holders of that request; every instance attends the queries it was sent over its own slice
(`partial_attention`, returning the log-sum-exp) and sends the partials back; the master merges them
with its own (`merge_partials`) into exact attention over the whole context. Two messages per peer
pair per layer, both sized from the plan, so no shapes travel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from foundry.llm.layers.rotary import apply_rotary
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.llm.partial_attention import merge_partials, partial_attention
from foundry.serve.elastic.comm import Comm, exchange
from foundry.serve.elastic.kv_pool import KVPool


@dataclass(frozen=True, slots=True)
class DecodeWork:
    request_ids: tuple[str, ...]
    tokens: tuple[int, ...]  # each request's input token (the last one sampled)
    positions: tuple[int, ...]  # its position = the context held before this step
    masters: tuple[int, ...]
    holders: tuple[tuple[int, ...], ...]  # per request, every instance with part of its KV after this step
    instances: tuple[int, ...]


@torch.no_grad()
def multi_master_decode(model: LlamaForCausalLM, pool: KVPool, comm: Comm,
                        work: DecodeWork) -> dict[str, torch.Tensor]:
    """One decode step as instance `comm.rank`; returns the logits ``[vocab]`` of the requests it masters."""
    me = comm.rank
    cfg, inner = model.config, model.model
    H, Hkv, D = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    mine = [i for i, m in enumerate(work.masters) if m == me]
    peers = [p for p in work.instances if p != me]
    # queries I send to peer p (my requests p holds part of) and receive from p (its requests I hold)
    send_to = {p: [i for i in mine if p in work.holders[i]] for p in peers}
    recv_from = {p: [i for i, m in enumerate(work.masters) if m == p and me in work.holders[i]]
                 for p in peers}
    ids = torch.tensor([work.tokens[i] for i in mine], dtype=torch.long)
    pos = torch.tensor([work.positions[i] for i in mine], dtype=torch.long)
    new_slots = [pool.allocate(work.request_ids[i], pos[j:j + 1]) for j, i in enumerate(mine)]
    slots = torch.cat(new_slots) if new_slots else torch.empty(0, dtype=torch.long)
    row = {i: j for j, i in enumerate(mine)}

    x = inner.embed_tokens(ids)
    cos, sin = inner.rotary(pos)
    for li, layer in enumerate(inner.layers):
        attn = layer.self_attn
        B = len(mine)
        if B:
            h = layer.input_layernorm(x)
            q = apply_rotary(attn.q_proj(h).view(B, H, D), cos, sin)
            k = apply_rotary(attn.k_proj(h).view(B, Hkv, D), cos, sin)
            pool.write(li, slots, k, attn.v_proj(h).view(B, Hkv, D))
        else:
            q = torch.empty(0, H, D)
        # round 1: queries out to the other holders
        got_q = {p: torch.empty(len(recv_from[p]), H, D) for p in peers}
        exchange(comm, {p: q[[row[i] for i in send_to[p]]] for p in peers}, got_q)
        # partials over my slice: for the queries I was sent, and for my own requests
        back = {p: _partials(pool, li, [work.request_ids[i] for i in recv_from[p]], got_q[p], attn.scale)
                for p in peers}
        got_r = {p: torch.empty(len(send_to[p]), H, D + 1) for p in peers}
        exchange(comm, back, got_r)  # round 2: partials back to the masters
        if not B:
            continue
        own = _partials(pool, li, [work.request_ids[i] for i in mine], q, attn.scale)  # [B, H, D+1]
        outs, lses = [own[..., :D]], [own[..., D]]
        for p in peers:
            if send_to[p]:
                part = torch.zeros(B, H, D + 1)
                part[..., D] = float("-inf")  # requests p does not hold weigh nothing
                part[[row[i] for i in send_to[p]]] = got_r[p]
                outs.append(part[..., :D])
                lses.append(part[..., D])
        o, _ = merge_partials(outs, lses)
        x = x + attn.o_proj(o.reshape(B, H * D))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    if not mine:
        return {}
    logits = model.compute_logits(inner.norm(x))
    return {work.request_ids[i]: logits[j] for j, i in enumerate(mine)}


def _partials(pool: KVPool, layer: int, request_ids: list[str], q: torch.Tensor,
              scale: float) -> torch.Tensor:
    """Each query row ``[H, D]`` of `q` over this instance's slice of its request: ``[n, H, D+1]``
    (output, then the log-sum-exp in the last column, so one tensor travels back)."""
    out = torch.empty(len(request_ids), q.shape[1], q.shape[2] + 1)
    for j, rid in enumerate(request_ids):
        k, v, _ = pool.read(layer, rid)
        o, lse = partial_attention(q[j][:, None], k, v, scale=scale)  # [H, 1, D], [H, 1]
        out[j, :, :-1], out[j, :, -1] = o[:, 0], lse[:, 0]
    return out
