"""A draft model as a speculative proposer: a small LLM with its own paged KV cache, run greedily.

For each decoding request the draft keeps a block table and the tokens its KV holds. To propose, it
first catches up: the KV it holds is trimmed to the longest common prefix with the request's current
tokens (what the target rejected goes, what it accepted stays), the rest of the context is computed
as one chunk whose last logits give draft 1; then k - 1 batched decode steps give the others. The
drafts are the draft model's argmax, a one-hot proposal, so `sampler.verify_drafts` keeps the target's
distribution exactly. The same `ModelRunner` and `BlockManager` as the engine's do the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from foundry.llm.loader import load_model
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.llm.tokenizer import Tokenizer
from foundry.serve.block_manager import BlockManager
from foundry.serve.cache_engine import CacheEngine
from foundry.serve.model_runner import ModelRunner
from foundry.serve.policies.base import ScheduledRequest
from foundry.serve.sampling_params import SamplingParams
from foundry.serve.sequence import KV_DEVICE, Sequence
from foundry.serve.speculative import NgramProposer, Proposer

if TYPE_CHECKING:
    from foundry.serve.config import EngineConfig

_GREEDY = SamplingParams(max_tokens=1 << 30, temperature=0.0)


class DraftModelProposer:
    def __init__(self, model: LlamaForCausalLM, k: int, block_size: int, num_blocks: int,
                 device: torch.device, alive: Callable[[str], bool]) -> None:
        dtype = next(model.parameters()).dtype
        self.k, self.alive = k, alive
        self.memory = BlockManager(block_size, num_blocks)
        self.cache = CacheEngine(model.config, block_size, num_blocks, 0, device, dtype)
        self.runner = ModelRunner(model, self.cache, block_size, device)
        self.seqs: dict[str, Sequence] = {}  # request id -> the draft's view: prompt = tokens with KV

    def propose_batch(self, wants: dict[str, tuple[list[int], int]]) -> dict[str, list[int]]:
        """`wants[request_id] = (its tokens, at most how many drafts)` -> drafts per request."""
        for rid in [r for r in self.seqs if not self.alive(r)]:  # finished or aborted requests
            self._drop(rid)
        batch: list[ScheduledRequest] = []
        budget: dict[str, int] = {}
        positions = self.runner.model.config.max_position_embeddings
        for rid, (tokens, k) in wants.items():
            k = min(k, self.k, positions - len(tokens))
            if k < 1 or not self._catch_up(rid, tokens):
                continue
            seq = self.seqs[rid]
            batch.append(ScheduledRequest(seq, len(tokens) - seq.num_computed_tokens))
            budget[rid] = k
        drafts: dict[str, list[int]] = {rid: [] for rid in budget}
        while batch:
            logits, _, inp = self.runner.execute(batch, self.memory)
            nxt = logits.argmax(dim=-1).tolist()
            following = []
            for seq, token, item in zip(inp.sampled, nxt, self._in_runner_order(batch, inp), strict=True):
                seq.num_computed_tokens += item.num_tokens
                rid = seq.request_id
                drafts[rid].append(token)
                seq.output_token_ids.append(token)
                if len(drafts[rid]) < budget[rid] and self._grow(seq, 1):
                    following.append(ScheduledRequest(seq, 1))
            batch = following
        return {rid: d for rid, d in drafts.items() if d}

    @staticmethod
    def _in_runner_order(batch: list[ScheduledRequest], inp) -> list[ScheduledRequest]:
        by_seq = {id(item.seq): item for item in batch}
        return [by_seq[id(seq)] for seq in inp.sampled]

    def _catch_up(self, rid: str, tokens: list[int]) -> bool:
        """Make the draft's sequence `tokens` with its KV kept for the longest common prefix; False
        when its pool cannot hold them."""
        seq = self.seqs.get(rid)
        keep = 0
        if seq is not None:
            held = seq.prompt_token_ids + seq.output_token_ids
            limit = min(seq.num_computed_tokens, len(tokens) - 1)  # at least one token to run
            while keep < limit and held[keep] == tokens[keep]:
                keep += 1
        if seq is None or keep == 0:
            self._drop(rid)
            seq = self.seqs[rid] = Sequence(rid, list(tokens), _GREEDY, 0.0)
        else:
            seq.prompt_token_ids, seq.output_token_ids = list(tokens), []
            seq.num_computed_tokens = keep
            self.memory.truncate(rid, keep)
        return self._grow(seq, len(tokens) - seq.num_computed_tokens)

    def _grow(self, seq: Sequence, n: int) -> bool:
        need = seq.num_computed_tokens + n
        rid = seq.request_id
        if rid not in self.memory.tables:
            if not self.memory.can_allocate(rid, need):
                self._drop(rid)
                return False
            self.memory.allocate(rid, need)
            seq.kv_location = KV_DEVICE
            return True
        if not self.memory.can_allocate(rid, need):
            return False
        self.memory.append(rid, need)
        return True

    def _drop(self, rid: str) -> None:
        self.memory.free(rid)
        self.seqs.pop(rid, None)


def build_proposer(config: EngineConfig, target: LlamaForCausalLM, tokenizer: Tokenizer, num_blocks: int,
                   device: torch.device, dtype: torch.dtype, alive: Callable[[str], bool]) -> Proposer | None:
    """The proposer `config.speculative` names (None: no speculation); a draft model must share the
    target's vocabulary."""
    spec = config.speculative
    if spec.method == "ngram":
        return NgramProposer(spec.num_tokens, spec.ngram_max, spec.ngram_min)
    if spec.method != "draft":
        return None
    draft, draft_tokenizer, _ = load_model(spec.draft_model, device, dtype, config.seed)
    vocab = target.config.vocab_size
    if draft_tokenizer.vocab_size != tokenizer.vocab_size or draft.config.vocab_size != vocab:
        raise ValueError(f"speculative_draft_model: {spec.draft_model!r} has another vocabulary than the "
                         f"target ({draft.config.vocab_size} vs {vocab} ids)")
    return DraftModelProposer(draft, spec.num_tokens, config.cache.block_size, num_blocks, device, alive)
