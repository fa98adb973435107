"""The engine's reported logprobs are the trainer's, recomputed: same weights, temperature 1."""

import torch

from foundry.llm.models.llama import LlamaForCausalLM
from foundry.rl.model import token_logprobs
from foundry.rl.rollout import GenerationDone, RolloutWorker
from foundry.rl.tasks import make_task


def test_engine_and_trainer_logprobs_agree(tiny_policy):
    cfg, weights = tiny_policy
    worker = RolloutWorker(0, cfg, weights, "rle", max_num_seqs=8)
    items = list(enumerate(make_task("rle").prompts(6, seed=1)))
    out = list(worker.generate(0, items, n=3, temperature=1.0, seed=0))
    assert isinstance(out[-1], GenerationDone) and out[-1].busy_s > 0
    groups = out[:-1]
    assert sorted(g.index for g in groups) == list(range(6)) and all(len(g.samples) == 3 for g in groups)
    model = LlamaForCausalLM(cfg)
    model.load_weights(weights)
    worst = 0.0
    for g in groups:
        lps = token_logprobs(model, [g.prompt_ids] * 3, [s.token_ids for s in g.samples])
        for s, lp in zip(g.samples, lps, strict=True):
            assert len(s.logprobs) == len(s.token_ids) == len(s.versions) and set(s.versions) == {0}
            worst = max(worst, (lp - torch.tensor(s.logprobs)).abs().max().item())
    assert worst <= 1e-5


def test_logprobs_under_other_weights_equal_a_model_holding_them(tiny_policy):
    cfg, weights = tiny_policy
    gen = torch.Generator().manual_seed(1)
    other = {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in weights.items()}
    model, holder = LlamaForCausalLM(cfg), LlamaForCausalLM(cfg)
    model.load_weights(weights)
    holder.load_weights(other)
    prompts, completions = [[5, 6, 7], [8]], [[9, 10], [11, 12, 13]]
    for a, b in zip(token_logprobs(model, prompts, completions, weights=other),
                    token_logprobs(holder, prompts, completions), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(token_logprobs(model, prompts, completions)[0],
                              token_logprobs(holder, prompts, completions)[0])
