"""RLHFuse's inter-stage fusion on real rollout workers: a preempted generation hands its unfinished
samples back and another worker finishes them exactly as the first would have (the sampler stream and
the KV travel with them; greedy continuations are identical even when the KV is recomputed)."""

import pickle

import pytest
import torch

from foundry.rl.critic import Critic
from foundry.rl.model import token_logprobs
from foundry.rl.rollout import GenerationDone, Preempted, RolloutWorker, SampleDone
from foundry.rl.tasks import make_task


def _run_alone(cfg, weights, items, n, temperature):
    worker = RolloutWorker(0, cfg, weights, "rle", max_num_seqs=4)
    out = [x for x in worker.generate(0, items, n, temperature, seed=3) if not isinstance(x, GenerationDone)]
    return {g.index: g for g in out}


def _run_migrated(cfg, weights, items, n, temperature, after, migrate_kv):
    """Worker 0 generates for `after` engine steps, is preempted, and worker 1 finishes the rest (the
    partials pickled and unpickled, as they cross processes). Four prompts run on worker 0; two wait."""
    first = RolloutWorker(0, cfg, weights, "rle", max_num_seqs=4)
    second = RolloutWorker(1, cfg, weights, "rle", max_num_seqs=8)
    step, steps = first.engine.step, []

    def counted_step():
        steps.append(1)
        if len(steps) == after:
            first.preempt()
        return step()

    first.engine.step = counted_step
    groups, partials = {}, None
    for x in first.generate(0, items, n, temperature, seed=3, progress=True, migrate_kv=migrate_kv):
        if isinstance(x, Preempted):
            partials = pickle.loads(pickle.dumps(x.partials))
        elif not isinstance(x, GenerationDone | SampleDone):
            groups[x.index] = x
    assert partials, "the preemption came after the last sample"
    moved = sum(pg.unfinished for pg in partials)
    assert any(pg.running for pg in partials)
    if n > 1 and after == 1:  # prompts whose samples still wait for the prompt's prefill leave whole
        assert any(pg.restart for pg in partials)
    for x in second.resume(0, partials, migrate_kv=migrate_kv):
        if not isinstance(x, GenerationDone):
            groups[x.index] = x
    return groups, moved


@pytest.mark.parametrize(("temperature", "migrate_kv", "after"),
                         [(0.0, False, 30), (0.0, True, 30), (1.0, True, 30), (1.0, True, 1)])
def test_migrated_samples_end_as_they_would_have(tiny_policy, temperature, migrate_kv, after):
    cfg, weights = tiny_policy
    items = list(enumerate(make_task("rle").prompts(6, seed=2)))
    n = 1 if temperature == 0 else 3
    alone = _run_alone(cfg, weights, items, n, temperature)
    migrated, moved = _run_migrated(cfg, weights, items, n, temperature, after, migrate_kv=migrate_kv)
    assert moved >= 3 and sorted(migrated) == sorted(alone) == list(range(6))
    for i, g in alone.items():
        assert [s.token_ids for s in migrated[i].samples] == [s.token_ids for s in g.samples]
        for a, b in zip(migrated[i].samples, g.samples, strict=True):
            assert a.reward == b.reward and a.versions == b.versions
            torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=0, atol=1e-5)


def test_infer_matches_the_trainers_own_forwards(tiny_policy):
    cfg, weights = tiny_policy
    worker = RolloutWorker(0, cfg, weights, "rle", max_num_seqs=8)
    critic = Critic.from_policy(cfg, weights)
    torch.nn.init.normal_(critic.value_head.weight, std=0.1, generator=torch.Generator().manual_seed(0))
    worker.update_critic(critic.state_dict())
    items = list(enumerate(make_task("rle").prompts(3, seed=4)))
    groups = [g for g in worker.generate(0, items, 2, 1.0, seed=1) if not isinstance(g, GenerationDone)]
    moved = {k: v + 0.01 for k, v in weights.items()}  # the worker's policy moves on; the reference stays
    worker.update_weights(moved, 1)
    inferred = worker.infer(groups)
    prompts = [g.prompt_ids for g in groups for _ in g.samples]
    completions = [s.token_ids for g in groups for s in g.samples]
    from foundry.llm.models.llama import LlamaForCausalLM

    ref_model = LlamaForCausalLM(cfg)
    ref_model.load_weights(weights)
    with torch.no_grad():
        ref = token_logprobs(ref_model, prompts, completions)
        values = critic.values(prompts, completions)
    flat = [x for per_group in inferred for x in per_group]
    for x, r, v in zip(flat, ref, values, strict=True):
        torch.testing.assert_close(torch.tensor(x.ref_logprobs), r, rtol=0, atol=1e-5)
        torch.testing.assert_close(torch.tensor(x.values), v, rtol=0, atol=1e-5)
