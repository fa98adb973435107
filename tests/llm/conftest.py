"""Tiny random Hugging Face checkpoints written with `save_pretrained` (the logits oracle)."""

import pytest
import torch

from foundry.llm import build_tiny_tokenizer


def make_hf_checkpoint(path, arch: str = "llama", **overrides):
    import transformers

    common = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=256, eos_token_id=257)
    common.update(overrides)
    if arch == "llama":
        cfg, cls = transformers.LlamaConfig(**common), transformers.LlamaForCausalLM
    else:
        cfg, cls = transformers.Qwen2Config(**common), transformers.Qwen2ForCausalLM
    torch.manual_seed(0)
    model = cls(cfg).eval()
    with torch.no_grad():  # HF inits biases to zero; make them matter
        for name, p in model.named_parameters():
            if name.endswith("bias") or name.endswith("norm.weight"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(path)
    build_tiny_tokenizer()._tok.save(str(path / "tokenizer.json"))
    return model


@pytest.fixture
def hf_checkpoint():
    """The checkpoint factory, as a fixture: `hf_checkpoint(path, arch, **config_overrides)`."""
    return make_hf_checkpoint


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama")
    return path, make_hf_checkpoint(path, "llama")
