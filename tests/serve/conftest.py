"""A tiny checkpoint (hidden 64, 2 layers) and an engine factory for the engine tests."""

import pytest

from foundry.llm import ModelConfig, build_model, build_tiny_tokenizer, save_checkpoint

TINY_TEST_CONFIG = ModelConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_layers=2,
                               num_heads=4, num_kv_heads=2, max_position_embeddings=256,
                               bos_token_id=256, eos_token_id=257)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tiny-ckpt")
    save_checkpoint(build_model(TINY_TEST_CONFIG, seed=0), build_tiny_tokenizer(), path)
    return str(path)


@pytest.fixture
def make_engine(tiny_ckpt):
    from foundry.serve import EngineConfig, LLMEngine

    def make(*, check_invariants: bool = False, clock=None, **overrides) -> LLMEngine:
        extra = {} if clock is None else {"clock": clock}  # a virtual clock: a schedule that cannot race
        return LLMEngine(EngineConfig(model=tiny_ckpt, **overrides), check_invariants=check_invariants,
                         **extra)

    return make
