"""Loss/metric by hand, the schedule, and a tiny end-to-end training run with resume."""

import json
import math

import numpy as np
import pytest
import torch

from foundry.pde.data.generate import GenerateConfig, generate
from foundry.pde.inference import load_model
from foundry.pde.losses.nrmse import normalized_rmse, relative_l2
from foundry.pde.training.config import TrainConfig
from foundry.pde.training.schedule import warmup_cosine
from foundry.pde.training.train import TrainingInterrupted, train


def test_loss_and_metric_by_hand():
    pred = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    label = torch.tensor([[1.0, 2.0, 3.0, 6.0], [3.0, 4.0, 0.0, 0.0]])
    # sample 0: rmse = 1, rms(label) = sqrt(50/4); sample 1: rmse = rms = 2.5
    expected = (1 / (math.sqrt(12.5) + 0.05) + 2.5 / (2.5 + 0.05)) / 2
    assert normalized_rmse(pred, label).item() == pytest.approx(expected, rel=1e-6)
    rel = relative_l2(pred, label)
    assert rel[0].item() == pytest.approx(2 / math.sqrt(50), rel=1e-6) and rel[1].item() == pytest.approx(
        1, rel=1e-6
    )
    assert relative_l2(torch.ones(1, 3) * 100, torch.ones(1, 3)).item() == 5.0  # clipped


def test_warmup_cosine():
    assert warmup_cosine(0, 10, 110) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110) == pytest.approx(0.5)
    assert warmup_cosine(110, 10, 110, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(20, 10, 110, time_fraction=1.0) == pytest.approx(0.0)  # time budget used up


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("pde")
    cfg = dict(num_x=32, num_t=6, dt=1e-3, chunk_size=16)
    generate(GenerateConfig(num_samples=16, seed=0, **cfg), d / "train.h5", progress=False)
    generate(GenerateConfig(num_samples=4, seed=1, **cfg), d / "test.h5", progress=False)
    return d


def test_train_learns_and_resumes(tiny_data, tmp_path):
    base = dict(
        train_data=tiny_data / "train.h5",
        test_data=tiny_data / "test.h5",
        out_dir=tmp_path / "run",
        batch_size=4,
        num_query_points=128,
        lr=2e-3,
        warmup_steps=5,
        log_every=10,
        eval_every=40,
        train_limit=4,
    )
    summary = train(TrainConfig(**base, max_steps=80))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < 0.9 * losses[0]  # starts to fit four PDEs
    assert summary["step"] == 80 and np.isfinite(summary["best_rel_l2"])
    summary = train(TrainConfig(**base, max_steps=90))  # resume from last.pt
    assert summary["step"] == 90
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 90 and "test_rel_l2" in log[-1]
    model, meta = load_model(tmp_path / "run" / "best.pt")
    assert meta["rel_l2"] == pytest.approx(summary["best_rel_l2"]) and model.config.num_mod == 3


def test_config_rejects_bad_values(tiny_data):
    with pytest.raises(ValueError, match="model_size"):
        TrainConfig(train_data=tiny_data / "train.h5", model_size="XXL")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(train_data=tiny_data / "train.h5", batch_size=0)


def test_init_from_starts_at_the_checkpoint(tiny_data, tmp_path):
    """Finetuning: step 0 of a run with init_from uses the checkpoint's weights, not a fresh init."""
    base = dict(train_data=tiny_data / "train.h5", batch_size=2, num_query_points=32, log_every=1)
    train(TrainConfig(**base, out_dir=tmp_path / "a", max_steps=3, lr=1e-2, warmup_steps=0, seed=1))
    src, _ = load_model(tmp_path / "a" / "last.pt")
    # lr ~ 0 over one step: the finetuned weights must equal the source's to float precision
    train(
        TrainConfig(
            **base,
            out_dir=tmp_path / "b",
            max_steps=1,
            lr=1e-12,
            warmup_steps=0,
            init_from=tmp_path / "a" / "last.pt",
            seed=2,
        )
    )
    tuned, _ = load_model(tmp_path / "b" / "last.pt")
    fresh = torch.nn.utils.parameters_to_vector
    assert torch.allclose(fresh(tuned.parameters()), fresh(src.parameters()), atol=1e-6)
    with pytest.raises(ValueError, match="different model size"):
        train(
            TrainConfig(
                **base,
                out_dir=tmp_path / "c",
                max_steps=1,
                model_size="S",
                init_from=tmp_path / "a" / "last.pt",
            )
        )


def test_interrupt_saves_both_checkpoints_and_resumes(tiny_data, tmp_path):
    """A KeyboardInterrupt from the observer (as Ctrl-C would arrive) keeps last.pt and best.pt."""
    base = dict(
        train_data=tiny_data / "train.h5",
        test_data=tiny_data / "test.h5",
        out_dir=tmp_path / "run",
        batch_size=2,
        num_query_points=32,
        warmup_steps=0,
        eval_every=3,
        max_steps=8,
    )
    seen = []

    def stop_at(n):
        def hook(step, metrics):
            seen.append((step, "test_rel_l2" in metrics))
            if step == n:
                raise KeyboardInterrupt

        return hook

    with pytest.raises(TrainingInterrupted) as e:
        train(TrainConfig(**base), on_step=stop_at(2))
    assert e.value.step == 2 and e.value.saved
    _, best = load_model(tmp_path / "run" / "best.pt")
    assert best["step"] == 2 and best["rel_l2"] is None  # nothing evaluated yet: the latest weights
    with pytest.raises(KeyboardInterrupt):  # TrainingInterrupted is one
        train(TrainConfig(**base), on_step=stop_at(5))  # resumes at 2, evaluates at 3
    assert seen == [(1, False), (2, False), (3, True), (4, False), (5, False)]
    _, best = load_model(tmp_path / "run" / "best.pt")
    _, last = load_model(tmp_path / "run" / "last.pt")
    assert best["step"] == 3 and best["rel_l2"] > 0 and last["step"] == 5
    assert train(TrainConfig(**base))["step"] == 8


def test_without_test_data_best_is_the_final_weights(tiny_data, tmp_path):
    cfg = TrainConfig(
        train_data=tiny_data / "train.h5", out_dir=tmp_path, batch_size=2, num_query_points=32, max_steps=2
    )
    summary = train(cfg)
    assert summary["best_rel_l2"] is None
    best, meta = load_model(tmp_path / "best.pt")
    last, _ = load_model(tmp_path / "last.pt")
    assert meta["step"] == 2 and meta["rel_l2"] is None
    for a, b in zip(best.parameters(), last.parameters(), strict=True):
        assert torch.equal(a, b)
