"""The Llama-family decoder (Llama 2/3, Qwen2), in reading order.

Module names mirror Hugging Face's (`model.layers.{i}.self_attn.q_proj`, ...) so a checkpoint's
state dict loads with no renaming. Inputs are flat token runs `[T]` from many sequences; the
attention metadata says how they split into sequences and where their K/V live.
"""

from __future__ import annotations

import torch
from torch import nn

from foundry.llm.config import ModelConfig
from foundry.llm.layers import Attention, AttentionMetadata, RMSNorm, RotaryEmbedding, SwiGLU

KVCache = tuple[torch.Tensor, torch.Tensor]


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
                                   qkv_bias=cfg.qkv_bias, o_bias=cfg.o_bias)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)

    def forward(self, x, cos, sin, kv_cache: KVCache | None, meta: AttentionMetadata) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv_cache, meta)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.rotary = RotaryEmbedding(cfg.head_dim, cfg.max_position_embeddings, cfg.rope_theta,
                                      cfg.rope_scaling)

    def forward(self, input_ids, positions, kv_caches: list[KVCache] | None, meta) -> torch.Tensor:
        x = self.embed_tokens(input_ids)  # [T, hidden]
        cos, sin = self.rotary(positions)  # [T, D]
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, None if kv_caches is None else kv_caches[i], meta)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(
        self,
        input_ids: torch.Tensor,  # [T]
        positions: torch.Tensor,  # [T]
        kv_caches: list[KVCache] | None,
        meta: AttentionMetadata,
    ) -> torch.Tensor:
        """Returns final hidden states [T, hidden]; `compute_logits` maps chosen rows to the vocab."""
        return self.model(input_ids, positions, kv_caches, meta)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden).float()  # [N, V]

    @torch.no_grad()
    def load_weights(self, state_dict: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Copy a Hugging Face-named state dict in place (the tensors keep their storage)."""
        params = dict(self.named_parameters())
        missing = set(params)
        for name, tensor in state_dict.items():
            if name not in params:
                if name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight"
                                                             and self.config.tie_word_embeddings):
                    continue
                if strict:
                    raise ValueError(f"state_dict: unexpected weight {name!r}")
                continue
            if params[name].shape != tensor.shape:
                raise ValueError(f"state_dict: {name!r} has shape {tuple(tensor.shape)}, "
                                 f"expected {tuple(params[name].shape)}")
            params[name].copy_(tensor)
            missing.discard(name)
        if self.config.tie_word_embeddings:
            missing.discard("lm_head.weight")
        if strict and missing:
            raise ValueError(f"state_dict: missing weights {sorted(missing)[:5]}")
