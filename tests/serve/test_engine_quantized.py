"""The engine with weight-only quantisation (`EngineConfig.quantization`): loaded, close, guarded."""

import pytest

from foundry.llm.quantize import linear_weight_bytes, quantization_of
from foundry.serve import EngineConfig, LLMEngine, SamplingParams


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_the_engine_quantises_at_load_and_logits_stay_close(make_engine, mode):
    ref, quant = make_engine(), make_engine(quantization=mode)
    assert quantization_of(quant.model) == mode and quantization_of(ref.model) is None
    ratio = linear_weight_bytes(quant.model) / linear_weight_bytes(ref.model)
    if mode == "int8":  # 1 byte a weight + a float32 scale per output row of >= 64 inputs
        assert 0.25 < ratio <= 0.25 + 1 / 64
    else:  # half a byte a weight + a float32 scale per 32 weights
        assert ratio == pytest.approx(0.125 + 1 / 32)
    params = SamplingParams(max_tokens=4, temperature=0.0, logprobs=0, return_output_logprobs=True,
                            ignore_eos=True)
    prompt = list(range(1, 40))
    a = ref.generate([prompt], params)[0]
    b = quant.generate([prompt], params)[0]
    first_a, first_b = a.output_logprobs[0], b.output_logprobs[0]
    if a.output_token_ids[0] == b.output_token_ids[0]:
        assert abs(first_a - first_b) < (0.05 if mode == "int8" else 0.5)


def test_a_quantised_engine_refuses_new_weights_and_unquantised_handovers(make_engine):
    quant = make_engine(quantization="int8")
    with pytest.raises(ValueError, match="quantised"):
        quant.load_weights({}, 1)
    plain = make_engine()
    with pytest.raises(ValueError, match="^quantization: "):
        LLMEngine(EngineConfig(quantization="int8"), model=plain.model, tokenizer=plain.tokenizer)
    again = quant.rebuilt()  # an already quantised model in the configured mode is accepted
    assert quantization_of(again.model) == "int8"
