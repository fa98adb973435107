import pytest
import torch

from foundry.llm.config import ModelConfig
from foundry.llm.layers import AttentionMetadata
from foundry.llm.loader import build_model


@pytest.fixture(scope="session")
def esp_model():
    """A tiny random Llama (GQA: 4 query heads over 2 KV heads) and its dense reference forward."""
    cfg = ModelConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
                      num_kv_heads=2, max_position_embeddings=512)
    model = build_model(cfg, seed=1)

    @torch.no_grad()
    def dense_logits(tokens: list[int]) -> torch.Tensor:  # [len, vocab]: one instance, no cache
        n = len(tokens)
        h = model(torch.tensor(tokens), torch.arange(n), None, AttentionMetadata.dense([n]))
        return model.compute_logits(h)

    return cfg, model, dense_logits
