"""The trainer's update: GRPO's pieces against closed forms, streamed = batch (exact mode), versions."""

import random

import pytest
import torch

from foundry.rl.config import PPOConfig
from foundry.rl.grpo import GRPOConfig, group_advantages, token_loss
from foundry.rl.ppo import gae, value_loss
from foundry.rl.rollout import GenerationDone, RolloutWorker
from foundry.rl.samples import Group
from foundry.rl.tasks import make_task
from foundry.rl.trainer import Trainer


def test_group_advantages_closed_form():
    r = torch.tensor([1.0, 0.0, 0.5, 0.5])
    torch.testing.assert_close(group_advantages(r), (r - 0.5) / (r.std(unbiased=False) + 1e-6))
    torch.testing.assert_close(group_advantages(r, scale=False), r - 0.5)
    assert group_advantages(torch.ones(4)).abs().max() == 0


def test_token_loss_is_the_clipped_surrogate_plus_k3():
    cfg = GRPOConfig(clip=0.2, kl_coef=0.5)
    lp, old, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -2.0]), torch.tensor([-1.0, -1.0])
    loss, stats = token_loss(lp, old, ref, 2.0, cfg)
    ratio = torch.exp(lp - old)  # [1.65, 1]: the first is clipped at 1.2 for a positive advantage
    kl = torch.exp(ref - lp) - (ref - lp) - 1
    assert loss.item() == pytest.approx((-(torch.tensor([1.2, 1.0]) * 2.0) + 0.5 * kl).sum().item())
    assert stats["clipped"] == 1 and stats["kl"] == pytest.approx(kl.sum().item())
    assert ratio[0] > 1.2 and kl.min() >= 0


@pytest.fixture(scope="module")
def batch(tiny_policy):
    cfg, weights = tiny_policy
    worker = RolloutWorker(0, cfg, weights, "rle", max_num_seqs=16)
    items = list(enumerate(make_task("rle").prompts(8, seed=2)))
    groups = [g for g in worker.generate(0, items, n=4, seed=1) if not isinstance(g, GenerationDone)]
    assert len({round(s.reward, 6) for g in groups for s in g.samples}) > 1  # a non-zero advantage somewhere
    return groups


def _gradients(trainer: Trainer) -> list[torch.Tensor]:
    return [p.grad.clone() for p in trainer._parameters() if p.grad is not None]


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_streamed_micro_batches_in_any_order_give_the_batch_gradient(tiny_policy, batch, algo):
    cfg, weights = tiny_policy
    ppo = PPOConfig() if algo == "ppo" else None
    whole = Trainer(cfg, weights, GRPOConfig(), ppo=ppo)
    whole.accumulate(batch)
    whole.reduce_gradients()
    reference = _gradients(whole)
    total = sum(g.num_tokens for g in batch)
    for seed, size in [(0, 1), (1, 3), (2, 2)]:  # three arrival orders, three micro-batch sizes
        order = batch[:]
        random.Random(seed).shuffle(order)
        assert order != batch
        streamed = Trainer(cfg, weights, GRPOConfig(), ppo=ppo)
        for i in range(0, len(order), size):
            streamed.accumulate(order[i:i + size])
        streamed.reduce_gradients(total)
        for a, b in zip(_gradients(streamed), reference, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
    assert max(g.abs().max().item() for g in reference) > 0


@pytest.mark.parametrize("behaviour", ["recompute", "engine"])
def test_a_step_moves_the_weights_and_the_version_and_keeps_the_old_version_for_ratios(tiny_policy, batch,
                                                                                       behaviour):
    cfg, weights = tiny_policy
    t = Trainer(cfg, weights, GRPOConfig(behaviour_logprobs=behaviour), lr=1e-2, max_staleness=1)
    t.accumulate(batch[:-1])
    stats = t.step()
    assert stats["version"] == t.version == 1 and stats["tokens"] == sum(g.num_tokens for g in batch[:-1])
    assert set(t.snapshots) == {0, 1}
    assert any(not torch.equal(t.weights()[k], weights[k]) for k in weights)
    # a version-0 sample trained at version 1: its ratio's denominator comes from the version-0 weights
    prompts = [batch[-1].prompt_ids]
    s = batch[-1].samples[0]
    lp = t._logprobs_under(t.snapshots[1], prompts, [s.token_ids])[0]
    old = t._behaviour_logprobs(prompts, [s.token_ids], [s.versions], [lp], [s.logprobs])[0]
    # the engine's logprob as sampled, or the trainer's under version 0: the same to 1e-5
    torch.testing.assert_close(old, torch.tensor(s.logprobs), rtol=0, atol=1e-5)
    assert not torch.allclose(old, lp, atol=1e-5)
    if behaviour == "engine":
        assert torch.equal(old, torch.tensor(s.logprobs, dtype=old.dtype))


def test_a_sample_older_than_the_bound_is_refused(tiny_policy, batch):
    cfg, weights = tiny_policy
    t = Trainer(cfg, weights, GRPOConfig(), max_staleness=0)
    t.accumulate(batch[:1])
    t.step()
    with pytest.raises(ValueError, match="from version 0 reached the trainer at version 1"):
        t.accumulate(batch[1:2])


def test_checkpoint_round_trip(tiny_policy, batch, tmp_path):
    cfg, weights = tiny_policy
    a = Trainer(cfg, weights, GRPOConfig(), max_staleness=2)
    a.accumulate(batch[:2])
    a.step()
    a.save(tmp_path / "trainer.pt")
    b = Trainer(cfg, weights, GRPOConfig(), max_staleness=2)
    b.load(tmp_path / "trainer.pt")
    assert b.version == 1 and all(torch.equal(a.weights()[k], b.weights()[k]) for k in weights)
    for t in (a, b):
        t.accumulate(batch[2:4])
        t.step()
    assert all(torch.equal(a.weights()[k], b.weights()[k]) for k in weights)


def test_group_is_plain_data(batch):
    g: Group = batch[0]
    assert g.num_tokens == sum(len(s.token_ids) for s in g.samples) and g.max_len >= 1


def test_gae_closed_forms():
    v = torch.tensor([0.2, 0.5, 0.1])
    adv, ret = gae(v, 1.0, gamma=1.0, lam=1.0)  # Monte Carlo: every state's return is the reward
    torch.testing.assert_close(adv, 1.0 - v)
    torch.testing.assert_close(ret, torch.ones(3))
    adv, _ = gae(v, 1.0, gamma=1.0, lam=0.0)  # one-step TD
    torch.testing.assert_close(adv, torch.tensor([0.5 - 0.2, 0.1 - 0.5, 1.0 - 0.1]))
    adv, _ = gae(v, 1.0, gamma=0.9, lam=0.5)
    d = torch.tensor([0.9 * 0.5 - 0.2, 0.9 * 0.1 - 0.5, 1.0 - 0.1])
    expected = [d[0] + 0.45 * d[1] + 0.45**2 * d[2], d[1] + 0.45 * d[2], d[2]]
    torch.testing.assert_close(adv, torch.tensor(expected))


def test_value_loss_clips_the_update():
    old, ret = torch.tensor([0.0]), torch.tensor([1.0])
    assert value_loss(torch.tensor([0.1]), old, ret, clip=0.2).item() == pytest.approx(0.5 * 0.81)
    # a step past the clip range is charged the larger of the clipped and unclipped errors
    # (0.9 is nearly right, but 0.9 steps past the clip: the clipped value 0.2 is charged)
    assert value_loss(torch.tensor([0.9]), old, ret, clip=0.2).item() == pytest.approx(0.5 * 0.8**2)
    assert value_loss(torch.tensor([2.0]), old, ret, clip=0.2).item() == pytest.approx(0.5 * 1.0)


def test_a_ppo_step_trains_the_critic_too(tiny_policy, batch):
    cfg, weights = tiny_policy
    t = Trainer(cfg, weights, GRPOConfig(), lr=1e-2, ppo=PPOConfig())
    before = {k: v.clone() for k, v in t.critic.state_dict().items()}
    t.accumulate(batch)
    stats = t.step()
    assert stats["value_loss"] > 0
    assert not torch.equal(t.critic.value_head.weight, before["value_head.weight"])
    assert any(not torch.equal(t.weights()[k], weights[k]) for k in weights)
    state = t.state()
    assert "critic" in state and "critic_optimizer" in state


def test_intra_stage_fusion_gives_the_unfused_ppo_update():
    """The trainer's fused actor/critic pipeline (2 stages, 3 micro-batches) makes the unfused PPO step."""
    from foundry.rl.model import build_policy, policy_config, policy_tokenizer
    from foundry.rl.samples import Group, Sample
    from foundry.rl.tasks import Prompt

    cfg = policy_config(policy_tokenizer(), hidden=32, layers=2, context=64)
    weights = {k: v.detach().clone() for k, v in build_policy(cfg, seed=3).named_parameters()}
    g = torch.Generator().manual_seed(0)

    def sample() -> Sample:
        n = int(torch.randint(2, 9, (1,), generator=g))
        return Sample(torch.randint(0, 200, (n,), generator=g).tolist(), [0.0] * n, [0] * n, "", float(
            torch.rand((), generator=g)), False, "stop")

    groups = [Group(0, i, Prompt("x", "y"), torch.randint(0, 200, (5,), generator=g).tolist(),
                    [sample() for _ in range(3)]) for i in range(3)]
    trainers = [Trainer(cfg, weights, GRPOConfig(), lr=1e-2, ppo=PPOConfig(), pipeline=p)
                for p in (None, (2, 3))]
    for t in trainers:
        t.accumulate(groups)
    for (name, a), b in zip([*trainers[0].model.named_parameters(), *trainers[0].critic.named_parameters()],
                            [*trainers[1].model.parameters(), *trainers[1].critic.parameters()], strict=True):
        scale = a.grad.abs().max().clamp_min(1e-12)
        assert ((a.grad - b.grad).abs().max() / scale) <= 1e-5, name
    stats = [t.step() for t in trainers]
    assert stats[0]["loss"] == pytest.approx(stats[1]["loss"], rel=1e-5)
    for k, v in trainers[0].weights().items():  # (Adam's first step is ~lr per element, whatever the size of
        # its gradient: where a gradient is ~0 its 1e-5 difference shows; 1% of lr bounds it)
        torch.testing.assert_close(trainers[1].weights()[k], v, rtol=0, atol=1e-4)
