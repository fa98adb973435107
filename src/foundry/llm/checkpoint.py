"""Write a model + tokenizer as a Hugging Face-style checkpoint directory (LlamaForCausalLM).

Used to hand foundry-tiny (or any model built here) to other tools, e.g. `transformers` in the
throughput benchmark, and by tests that need a checkpoint of a given shape.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from foundry.llm.models.llama import LlamaForCausalLM
from foundry.llm.tokenizer import Tokenizer


def hf_config(model: LlamaForCausalLM) -> dict:
    cfg = model.config
    if cfg.qkv_bias != cfg.o_bias:
        arch, model_type = "Qwen2ForCausalLM", "qwen2"
    else:
        arch, model_type = "LlamaForCausalLM", "llama"
    out = {
        "architectures": [arch], "model_type": model_type, "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim, "hidden_act": "silu",
        "max_position_embeddings": cfg.max_position_embeddings, "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta, "rope_scaling": cfg.rope_scaling,
        "tie_word_embeddings": cfg.tie_word_embeddings, "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id, "torch_dtype": "float32",
    }
    if model_type == "llama":
        out.update(attention_bias=cfg.qkv_bias, mlp_bias=cfg.mlp_bias)
    return out


def save_checkpoint(model: LlamaForCausalLM, tokenizer: Tokenizer, path: str | Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(hf_config(model), indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(path / "model.safetensors"))
    tokenizer._tok.save(str(path / "tokenizer.json"))
    tok_cfg = {"add_bos_token": tokenizer.add_bos, "chat_template": tokenizer.chat_template}
    for key, tid in (("bos_token", tokenizer.bos_token_id), ("eos_token", tokenizer.eos_token_id)):
        if tid is not None:
            tok_cfg[key] = tokenizer._tok.id_to_token(tid)
    (path / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
    return path
