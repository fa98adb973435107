"""Weight versions only increase, show in the stats, and tag each output token with its version."""

import pytest
import torch

from foundry.serve import SamplingParams

GREEDY = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)


def halved(engine):
    return {k: v * 0.5 for k, v in engine.model.state_dict().items()}


def test_a_version_that_does_not_increase_is_refused_before_any_weight_changes(make_engine):
    engine = make_engine()
    engine.load_weights(halved(engine), version=2)
    snapshot = {k: v.clone() for k, v in engine.model.state_dict().items()}
    for bad in (2, 1, -5):
        with pytest.raises(ValueError, match=f"^version: weight versions only increase; got {bad} after 2"):
            engine.load_weights(halved(engine), version=bad)
    for bad in (3.0, True, "3"):
        with pytest.raises(ValueError, match="^version: must be an integer"):
            engine.load_weights(halved(engine), version=bad)
    with pytest.raises(ValueError, match="^version: weight versions only increase"):
        engine.set_weight_version(0)
    assert all(torch.equal(v, snapshot[k]) for k, v in engine.model.state_dict().items())
    assert engine.weight_version == 2 and engine.stats().weight_version == 2


def test_stats_show_the_version_and_each_token_records_its_own(make_engine):
    engine = make_engine()
    assert engine.stats().weight_version == 0
    engine.add_request("a", [1, 2, 3], GREEDY)
    outs = [engine.step()[0] for _ in range(3)]  # prefill + 2 decodes under version 0
    engine.load_weights(halved(engine), version=5)
    assert engine.stats().weight_version == 5
    engine.add_request("b", [4, 5], GREEDY)
    while engine.has_unfinished_requests():
        outs += engine.step()
    a = [o for o in outs if o.request_id == "a"]
    b = [o for o in outs if o.request_id == "b"]
    assert a[-1].finished and a[-1].weight_versions == [0, 0, 0, 5, 5, 5, 5, 5]
    assert [o.weight_versions for o in a[:3]] == [[0], [0, 0], [0, 0, 0]]  # every output: the list so far
    assert b[-1].finished and b[-1].weight_versions == [5] * 8
    engine.set_weight_version(6)  # a shared model updated in place by its owner
    assert engine.generate([[1]], GREEDY)[0].weight_versions == [6] * 8
    assert engine.stats().weight_version == 6
