"""An engine over a model already in memory (an RL trainer's): same outputs, shared weights."""

import pytest
import torch

from foundry.llm import build_model, build_tiny_tokenizer
from foundry.serve import EngineConfig, LLMEngine, SamplingParams
from tests.serve.conftest import TINY_TEST_CONFIG

PROMPTS = [[1, 2, 3], [7] * 11, "the quick brown fox"]
PARAMS = [SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True),
          SamplingParams(max_tokens=8, temperature=1.0, seed=3, ignore_eos=True),
          SamplingParams(max_tokens=8, temperature=0.7, top_k=20, seed=4, ignore_eos=True)]


def tokens(outs):
    return [o.output_token_ids for o in outs]


def test_generates_exactly_what_the_loaded_checkpoint_generates(make_engine):
    model, tok = build_model(TINY_TEST_CONFIG, seed=0), build_tiny_tokenizer()  # the checkpoint's weights
    engine = LLMEngine(EngineConfig(), model=model, tokenizer=tok, model_name="policy")
    assert engine.model is model and engine.runner.model is model and engine.model_name == "policy"
    assert tokens(engine.generate(PROMPTS, PARAMS)) == tokens(make_engine().generate(PROMPTS, PARAMS))


def test_weights_are_shared_so_the_trainers_in_place_updates_are_seen(make_engine):
    model = build_model(TINY_TEST_CONFIG, seed=0)
    ptrs = {n: p.data_ptr() for n, p in model.named_parameters()}
    engine = LLMEngine(EngineConfig(), model=model, tokenizer=build_tiny_tokenizer())
    assert {n: p.data_ptr() for n, p in engine.model.named_parameters()} == ptrs  # nothing copied
    before = engine.generate(PROMPTS, PARAMS)
    with torch.no_grad():  # an optimizer step, in place
        for p in model.parameters():
            p.mul_(0.5)
    engine.set_weight_version(1)
    after = engine.generate(PROMPTS, PARAMS)
    reference = make_engine()
    reference.load_weights({k: v * 0.5 for k, v in reference.model.state_dict().items()}, version=1)
    assert tokens(after) == tokens(reference.generate(PROMPTS, PARAMS)) != tokens(before)
    assert [o.weight_versions for o in after] == [[1] * 8] * 3
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == ptrs


def test_a_model_elsewhere_or_without_its_tokenizer_is_refused():
    model = build_model(TINY_TEST_CONFIG, seed=0)
    with pytest.raises(ValueError, match="^model: parameter .* torch.float64"):
        LLMEngine(EngineConfig(), model=model.double(), tokenizer=build_tiny_tokenizer())
    with pytest.raises(ValueError, match="^model: pass a model together with its tokenizer"):
        LLMEngine(EngineConfig(), model=model)
