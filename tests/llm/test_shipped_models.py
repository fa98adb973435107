"""The shipped trained models load by name and are trained (held-out perplexity far below chance)."""

import math

import pytest

from foundry.llm.loader import SHIPPED, load_model
from foundry.llm.pretrain import held_out_stream, perplexity


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_predicts_held_out_stdlib_code(name):
    model, tokenizer, got = load_model(name)
    assert got == name and model.config.vocab_size == tokenizer.vocab_size == 4096
    text = "def add(a, b):\n    return a + b\n"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    ppl = perplexity(model, held_out_stream(tokenizer), window=256, max_windows=8)
    assert ppl < 0.05 * tokenizer.vocab_size, ppl  # uniform guessing: 4096; the trained models: ~30-60
    assert math.isfinite(ppl)
