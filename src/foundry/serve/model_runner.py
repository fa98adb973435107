"""The model executor: turns a scheduled batch into flat model inputs over the paged cache and runs it.

Layout of one step's `T` tokens: decode tokens first (one per request, sorted by context length and
grouped for batched attention), then prefill/recompute chunks. Only requests whose computed count
catches up with their tokens this step produce logits (the rest were mid-prompt chunks). A decoding
request with speculative drafts runs as a chunk of its last token and the drafts, with logits at
every position (`ModelInput.spec`); chunks of one length are attended in one padded call, after the
decodes. Under a KV window a table lacks its evicted middle blocks: a
position's block index is shifted past them, and attention reads the kept tokens only (the sinks, then
the recent ones; keys keep the rotary phase of their original positions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from foundry.llm.layers.attention import AttentionMetadata, DecodeGroup
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.serve.block_manager import BlockManager
from foundry.serve.cache_engine import CacheEngine
from foundry.serve.policies.base import ScheduledRequest
from foundry.serve.sequence import Sequence


@dataclass
class ModelInput:
    input_ids: torch.Tensor  # [T]
    positions: torch.Tensor  # [T]
    meta: AttentionMetadata
    sample_rows: torch.Tensor  # [N] rows of the hidden states whose logits are sampled
    sampled: list[Sequence]  # the N requests that get a token this step
    sum_context_len: int
    spec: list[tuple[Sequence, int]] = field(default_factory=list)  # drafted requests, number of rows
    spec_rows: torch.Tensor | None = None  # their rows, in `spec` order, each request's rows together


class ModelRunner:
    def __init__(self, model: LlamaForCausalLM, cache_engine: CacheEngine, block_size: int,
                 device: torch.device) -> None:
        self.model = model
        self.cache_engine = cache_engine
        self.kv_caches = cache_engine.layer_caches()
        self.block_size = block_size
        self.device = device

    def prepare(self, batch: list[ScheduledRequest], memory: BlockManager,
                drafts: dict[str, list[int]] | None = None) -> ModelInput:
        bs, drafts = self.block_size, drafts or {}
        # decodes sorted by context and grouped so that padding stays under 2x within a group
        decodes = sorted((r for r in batch if r.is_decode and r.seq.request_id not in drafts),
                         key=lambda r: r.seq.num_computed_tokens)
        prefills = [r for r in batch if not r.is_decode]
        spec: list[tuple[Sequence, int]] = []
        spec_rows: list[int] = []
        ids: list[int] = []
        pos: list[int] = []
        slots: list[int] = []
        sample_rows: list[int] = []
        sampled: list[Sequence] = []
        sum_ctx = 0
        meta = AttentionMetadata(slot_mapping=None, block_size=bs)
        group: list[tuple[list[int], int]] = []  # (block table, context length)
        sink = memory.sink_blocks
        for r in decodes:
            seq, c = r.seq, r.seq.num_computed_tokens
            table = memory.block_ids(seq.request_id)
            gone = memory.num_evicted_tokens(seq.request_id)  # 0 without a KV window
            if group and len(table) > 2 * len(group[0][0]):
                meta.decode_groups.append(self._decode_group(group))
                group = []
            ids.extend(seq.token_ids(c, c + 1))
            pos.append(c)
            index = c // bs if c // bs < sink else (c - gone) // bs
            slots.append(table[index] * bs + c % bs)
            group.append((table, c + 1 - gone))
            sum_ctx += c + 1 - gone
            if r.is_last_chunk:
                sample_rows.append(len(ids) - 1)
                sampled.append(seq)
        if group:
            meta.decode_groups.append(self._decode_group(group))
        by_len: dict[int, list[ScheduledRequest]] = {}
        for r in batch:
            if r.is_decode and r.seq.request_id in drafts:
                by_len.setdefault(1 + len(drafts[r.seq.request_id]), []).append(r)
        for n, items in by_len.items():  # drafted requests: the last token and the drafts
            chunks: list[tuple[list[int], int]] = []
            for r in items:
                seq, c = r.seq, r.seq.num_computed_tokens
                table = memory.block_ids(seq.request_id)
                gone = memory.num_evicted_tokens(seq.request_id)
                spec.append((seq, n))
                spec_rows.extend(range(len(ids), len(ids) + n))
                ids.extend(seq.token_ids(c, c + 1) + drafts[seq.request_id])
                for p in range(c, c + n):
                    pos.append(p)
                    index = p // bs if p // bs < sink else (p - gone) // bs
                    slots.append(table[index] * bs + p % bs)
                chunks.append((table, c + n - gone))
                sum_ctx += c + n - gone
            meta.decode_groups.append(self._decode_group(chunks, n))
        prefill_slots = []
        for r in prefills:
            seq, c, n = r.seq, r.seq.num_computed_tokens, r.num_tokens
            table = torch.tensor(memory.block_ids(seq.request_id), dtype=torch.long)
            ids.extend(seq.token_ids(c, c + n))
            p = torch.arange(c, c + n)
            pos.extend(range(c, c + n))
            gone = memory.num_evicted_tokens(seq.request_id)
            index = p // bs if not gone else torch.where(p // bs < sink, p // bs, (p - gone) // bs)
            prefill_slots.append(table[index] * bs + p % bs)
            meta.prefill_query_lens.append(n)
            meta.prefill_context_lens.append(c + n - gone)
            meta.prefill_block_tables.append(table.to(self.device))
            sum_ctx += c + n - gone
            if r.is_last_chunk:
                sample_rows.append(len(ids) - 1)
                sampled.append(seq)
        slot_t = torch.tensor(slots, dtype=torch.long)
        if prefill_slots:
            slot_t = torch.cat([slot_t, *prefill_slots])
        meta.slot_mapping = slot_t.to(self.device)
        return ModelInput(
            input_ids=torch.tensor(ids, dtype=torch.long, device=self.device),
            positions=torch.tensor(pos, dtype=torch.long, device=self.device),
            meta=meta,
            sample_rows=torch.tensor(sample_rows, dtype=torch.long, device=self.device),
            sampled=sampled,
            sum_context_len=sum_ctx,
            spec=spec,
            spec_rows=torch.tensor(spec_rows, dtype=torch.long, device=self.device) if spec else None,
        )

    def _decode_group(self, group: list[tuple[list[int], int]], query_len: int = 1) -> DecodeGroup:
        """(block table, context with this step's tokens) per sequence; its last `query_len` tokens are
        the queries, each seeing the context up to itself."""
        width = max(len(t) for t, _ in group)
        bt = torch.tensor([t + [0] * (width - len(t)) for t, _ in group], dtype=torch.long)
        ctx = torch.tensor([c for _, c in group])
        ends = ctx[:, None] - query_len + 1 + torch.arange(query_len)[None, :]  # [B, n]: keys < this
        mask = torch.arange(width * self.block_size)[None, None, :] < ends[:, :, None]  # [B, n, L]
        return DecodeGroup(len(group), bt.to(self.device), mask[:, None].to(self.device), query_len)

    @torch.inference_mode()
    def execute(self, batch: list[ScheduledRequest], memory: BlockManager, drafts: dict[str, list[int]] | None
                = None) -> tuple[torch.Tensor, torch.Tensor | None, ModelInput]:
        """Logits [N, V] (fp32) for the requests in `inp.sampled`, logits at `inp.spec_rows` (None
        without drafts), and the inputs."""
        inp = self.prepare(batch, memory, drafts)
        hidden = self.model(inp.input_ids, inp.positions, self.kv_caches, inp.meta)
        logits = self.model.compute_logits(hidden[inp.sample_rows])
        spec_logits = None if inp.spec_rows is None else self.model.compute_logits(hidden[inp.spec_rows])
        return logits, spec_logits, inp
