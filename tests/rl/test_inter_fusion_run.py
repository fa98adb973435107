"""RLHFuse's inter-stage fusion in the real RL loop (local thread actors): with a threshold, unfinished
samples migrate and the freed worker runs the inference stage; the update is the unfused one."""

import threading

import pytest
import torch

import foundry.rl.controller
from foundry.rl.config import RLConfig
from foundry.rl.rollout import RolloutWorker
from foundry.rl.run import train


class GatedWorker(RolloutWorker):
    """Once a sample of its batch has finished, the worker waits (between two engine steps) until it is
    preempted or handed prompts, so the controller's fusion decision lands while every worker still has
    samples left, however the threads are scheduled (the test does not race them)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = False
        self.released = threading.Event()  # the controller's decision reached this worker

    def generate(self, *args, **kwargs):
        self.gate = kwargs.get("progress", args[5] if len(args) > 5 else False)  # only a fused run's
        self.released.clear()
        yield from super().generate(*args, **kwargs)

    def resume(self, *args, **kwargs):
        self.gate = False  # the decision has been taken
        yield from super().resume(*args, **kwargs)

    def preempt(self):
        super().preempt()
        self.released.set()

    def adopt(self, partials):
        self.gate = False  # the decision has been taken
        taken = super().adopt(partials)
        self.released.set()
        return taken

    def _run(self, batch, partials, start, progress, migrate_kv):
        if not self.gate:  # nothing will release it
            yield from super()._run(batch, partials, start, progress, migrate_kv)
            return
        engine, state = self.engine, {"finished": False}
        step = type(engine).step.__get__(engine)

        def gated_step():
            if state["finished"] and self.gate:
                self.released.wait(timeout=60)  # (a bound on a broken run, not a timing assumption)
                self.gate = False
            outs = step()
            state["finished"] = state["finished"] or any(o.finished for o in outs)
            return outs

        engine.step = gated_step
        try:
            yield from super()._run(batch, partials, start, progress, migrate_kv)
        finally:
            del engine.step


@pytest.fixture
def gated(monkeypatch):
    monkeypatch.setattr(foundry.rl.controller, "RolloutWorker", GatedWorker)


def tiny(**kw) -> RLConfig:
    small = dict(hidden=32, layers=1, steps=2, prompts_per_step=6, n=3, eval_prompts=4, micro_batch_groups=2,
                 max_batch=8, lr=5e-3, mode="sync", backend="local", trainer_threads=1, algo="ppo")
    return RLConfig(**{**small, **kw})


@pytest.mark.parametrize("migrate_kv", [True, False])
def test_fused_generation_and_inference_make_the_unfused_update(tiny_policy, gated, migrate_kv):
    cfg, weights = tiny_policy
    # the first finished sample triggers fusion (R_t = 0.99)
    base = train(tiny(), cfg, weights)
    fused = train(tiny(fusion="inter", fusion_threshold=0.99, migrate_kv=migrate_kv), cfg, weights)
    for r in fused.records:
        assert r.extra["migrated_samples"] > 0 and r.extra["survivors"] == 1
        assert r.extra["gen_inference_s"] >= r.extra["inference_hidden_s"] >= 0
    # same prompts and seeds; migration keeps each sample's sampler stream -> same samples, same update
    assert [r.reward for r in fused.records] == pytest.approx([r.reward for r in base.records], rel=1e-12)
    assert [r.tokens for r in fused.records] == [r.tokens for r in base.records]
    for k in weights:
        torch.testing.assert_close(fused.weights[k], base.weights[k], rtol=1e-4, atol=1e-6)


def test_threshold_zero_is_rlhfuse_base(tiny_policy):  # (no gate: nothing waits for a decision)
    cfg, weights = tiny_policy
    run = train(tiny(fusion="inter", fusion_threshold=0.0, steps=1, algo="grpo"), cfg, weights)
    r = run.records[0]
    assert r.extra["migrated_samples"] == 0 and r.extra["inference_hidden_s"] == 0


def test_fusion_options_are_checked():
    with pytest.raises(ValueError, match="fusion: inter-stage fusion runs in --mode sync"):
        RLConfig(fusion="inter", mode="stream")
    with pytest.raises(ValueError, match="fusion: intra-stage fusion"):
        RLConfig(fusion="intra", algo="grpo")
    with pytest.raises(ValueError, match="fusion_threshold"):
        RLConfig(fusion_threshold=0.2)


def test_on_ray_processes_fusion_moves_samples_between_processes(tiny_policy):
    """The same over Ray: the preempt and adopt signals run beside the generation in flight, the partial
    samples (sampler state, KV) cross processes (how many depends on timing here, not asserted), and the
    run's samples are the local unfused run's."""
    cfg, weights = tiny_policy
    base = train(tiny(steps=1), cfg, weights)
    fused = train(tiny(steps=1, backend="ray", fusion="inter", fusion_threshold=0.5), cfg, weights)
    assert [r.tokens for r in fused.records] == [r.tokens for r in base.records]
    assert fused.records[0].extra["survivors"] == 1
    for k in weights:
        torch.testing.assert_close(fused.weights[k], base.weights[k], rtol=1e-4, atol=1e-6)
