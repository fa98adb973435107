"""The policy: the engine's own Llama class at a size a CPU trains in minutes, a character tokenizer,
and the trainer's log-probabilities of a completion (dense causal attention, no KV cache).

The engine samples with the same module class over a paged KV cache; `token_logprobs` recomputes what
it reported (tests hold them to 1e-5 at temperature 1 with the same weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from foundry.llm.config import ModelConfig
from foundry.llm.layers.attention import AttentionMetadata
from foundry.llm.models.llama import LlamaForCausalLM
from foundry.llm.tokenizer import Tokenizer, build_tiny_tokenizer


def policy_tokenizer() -> Tokenizer:
    """Byte-level: one token per ASCII character, plus `<|eos|>` (ends every answer)."""
    return build_tiny_tokenizer()


def policy_config(tokenizer: Tokenizer, hidden: int = 128, layers: int = 3,
                  context: int = 320) -> ModelConfig:
    return ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, intermediate_size=hidden * 3,
                       num_layers=layers, num_heads=4, num_kv_heads=4, max_position_embeddings=context,
                       tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                       bos_token_id=tokenizer.bos_token_id)


def build_policy(cfg: ModelConfig, seed: int) -> LlamaForCausalLM:
    """Fresh small-init weights (GPT-2 style), deterministic in `seed`."""
    gen = torch.Generator().manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return model


def pack(prompts: list[list[int]], completions: list[list[int]]
         ) -> tuple[torch.Tensor, torch.Tensor, AttentionMetadata, torch.Tensor]:
    """Prompt + completion sequences as one flat run (no padding, as the engine packs a batch): token ids,
    positions, dense causal metadata, and the rows whose outputs predict the completion tokens
    (positions len(prompt)-1 .. len(seq)-2 of each sequence, in order)."""
    seqs = [p + c for p, c in zip(prompts, completions, strict=True)]
    lens = [len(s) for s in seqs]
    ids = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
    positions = torch.cat([torch.arange(n) for n in lens])
    rows, start = [], 0
    for p, n in zip(prompts, lens, strict=True):
        rows.append(torch.arange(start + len(p) - 1, start + n - 1))
        start += n
    return ids, positions, AttentionMetadata.dense(lens), torch.cat(rows)


def token_logprobs(model: LlamaForCausalLM, prompts: list[list[int]], completions: list[list[int]],
                   temperature: float = 1.0, weights: dict[str, torch.Tensor] | None = None
                   ) -> list[torch.Tensor]:
    """log p(completion token | everything before it) for each sequence: a list of [len(completion)].

    The sequences are packed by `pack`. `weights` computes under other weights than the model's own (an
    older version, the reference) without touching the model.
    """
    ids, positions, meta, row_index = pack(prompts, completions)
    args = (ids, positions, None, meta)
    hidden = model(*args) if weights is None else functional_call(model, weights, args)
    targets = [t for c in completions for t in c]
    if weights is None:
        logits = model.compute_logits(hidden[row_index])
    else:  # the output head under `weights` (tied models share the embedding matrix)
        head = weights.get("lm_head.weight", weights["model.embed_tokens.weight"])
        logits = F.linear(hidden[row_index], head).float()
    logits = logits / temperature
    lp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(targets)[:, None])[:, 0]
    return list(lp.split([len(c) for c in completions]))
