"""A model cut into pipeline stages gives the whole model's outputs and gradients (RLHFuse's premise)."""

import pytest
import torch

from foundry.llm.config import ModelConfig
from foundry.llm.loader import build_model
from foundry.rl.critic import Critic
from foundry.rl.model import pack, token_logprobs
from foundry.rl.pipeline_stage import StageInputs, run_stages, split_stages

CFG = ModelConfig(vocab_size=61, hidden_size=32, intermediate_size=64, num_layers=5, num_heads=4,
                  num_kv_heads=2, max_position_embeddings=64)
PROMPTS = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
COMPLETIONS = [[10, 11, 12, 13], [14], [15, 16]]


def _inputs() -> StageInputs:
    ids, positions, meta, rows = pack(PROMPTS, COMPLETIONS)
    return StageInputs(ids, positions, meta, rows, torch.tensor([t for c in COMPLETIONS for t in c]))


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_policy_stages_give_the_whole_models_logprobs_and_gradients(n):
    torch.manual_seed(0)
    model = build_model(CFG, seed=3)
    advantages = torch.randn(sum(len(c) for c in COMPLETIONS))
    whole = torch.cat(token_logprobs(model, PROMPTS, COMPLETIONS))
    (-(whole * advantages).sum()).backward()
    want = _grads(model)
    model.zero_grad()
    stages = split_stages(model, n)
    loss, boundary = run_stages(stages, _inputs(), lambda lp: -(lp * advantages).sum())
    assert len(boundary) == n - 1
    assert loss == pytest.approx(float(-(whole * advantages).sum().detach()), rel=1e-5)
    got = _grads(model)
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.parametrize("n", [2, 4])
def test_critic_stages_give_the_whole_critics_values_and_gradients(n):
    torch.manual_seed(1)
    critic = Critic.from_policy(CFG, build_model(CFG, seed=4).state_dict())
    torch.nn.init.normal_(critic.value_head.weight, std=0.1)  # zeros would hide the body's gradients
    returns = torch.randn(sum(len(c) for c in COMPLETIONS))
    whole = torch.cat(critic.values(PROMPTS, COMPLETIONS))
    ((whole - returns) ** 2).sum().backward()
    want = _grads(critic)
    critic.zero_grad()
    run_stages(split_stages(critic, n), _inputs(), lambda v: ((v - returns) ** 2).sum())
    got = _grads(critic)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=k)


def test_stages_share_the_models_parameters_and_refuse_bad_cuts():
    model = build_model(CFG, seed=3)
    stages = split_stages(model, 2)
    assert [len(s.layers) for s in stages] == [2, 3]
    ids = {id(p) for s in stages for p in s.parameters()}
    assert ids == {id(p) for p in model.parameters()}  # every parameter in exactly the model's storage
    with pytest.raises(ValueError, match="stages"):
        split_stages(model, 6)
