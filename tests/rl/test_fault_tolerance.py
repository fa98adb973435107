"""A rollout worker killed mid-batch is restarted; the prompts it had not delivered are generated again,
and every prompt's group reaches the trainer exactly once. Checkpoints resume where they stopped."""

import json

import torch

from foundry.rl.config import RLConfig
from foundry.rl.run import load_checkpoint, train


def tiny(mode: str, **kw) -> RLConfig:
    small = dict(hidden=32, layers=1, steps=3, prompts_per_step=6, n=2, eval_prompts=4, micro_batch_groups=2,
                 max_batch=4, lr=5e-3)
    return RLConfig(mode=mode, backend="local", **{**small, **kw})


def killer(batch: int, after: int):
    seen = []

    def on_group(controller, group) -> None:
        if group.batch == batch:
            seen.append(group.index)
            if len(seen) == after:
                controller.kill_worker(group.worker)
    return on_group


def test_a_worker_killed_mid_batch_is_replaced_and_nothing_is_lost_or_doubled(tiny_policy):
    cfg, weights = tiny_policy
    run = train(tiny("async"), cfg, weights, on_group=killer(batch=1, after=2))
    assert run.restarts == 1 and run.regenerated >= 1
    # the controller checks each batch holds every prompt exactly once (it raises otherwise)
    assert [r.samples for r in run.records] == [12, 12, 12]
    assert max(r.staleness_max for r in run.records) <= 1
    assert run.records[-1].extra["restarts"] == 1


def test_colocated_workers_survive_a_kill_too(tiny_policy):
    cfg, weights = tiny_policy
    run = train(tiny("sync", trainer_threads=1), cfg, weights, on_group=killer(batch=0, after=1))
    assert run.restarts == 1 and [r.samples for r in run.records] == [12, 12, 12]


def test_resume_continues_the_run_as_if_never_stopped(tiny_policy, tmp_path):
    cfg, weights = tiny_policy
    whole = train(tiny("stream", steps=4), cfg, weights)
    train(tiny("stream", steps=2), cfg, weights, out=tmp_path, checkpoint_every=1)
    assert json.loads((tmp_path / "run.json").read_text())["records"][-1]["step"] == 1
    ckpt = load_checkpoint(tmp_path, steps=4)
    assert ckpt.trainer_state["version"] == 2 and ckpt.ranker_state is not None
    resumed = train(ckpt.config, ckpt.model_config, ckpt.initial_weights, resume=ckpt, out=tmp_path)
    assert [r.step for r in resumed.records] == [0, 1, 2, 3] and resumed.new_records == 2
    # the same batches, weights, optimizer and ranker state -> the same run
    assert [r.reward for r in resumed.records] == [r.reward for r in whole.records]
    for k in weights:
        torch.testing.assert_close(resumed.weights[k], whole.weights[k], rtol=1e-5, atol=1e-7)


def test_a_worker_killed_in_a_fused_batch_is_replaced_and_nothing_is_lost_or_doubled(tiny_policy):
    """Inter-stage fusion (R_t high, so migration and inference on the workers are under way): a worker
    killed after the batch's first group is restarted; what it owed is generated again and inferred."""
    cfg, weights = tiny_policy
    run = train(tiny("sync", trainer_threads=1, fusion="inter", fusion_threshold=0.9), cfg, weights,
                on_group=killer(batch=0, after=1))
    assert run.restarts == 1 and [r.samples for r in run.records] == [12, 12, 12]
