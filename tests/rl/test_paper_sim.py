"""The iteration-time models on constructed cases, and the paper-scale simulation on a small one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from foundry.rl.dispatch import DispatchPlan, InstancePlan
from foundry.rl.iteration_time import (
    async_iteration,
    async_schedule,
    colocated_iteration,
    stream_iteration,
    stream_train_end,
)
from foundry.rl.paper_config import PaperSimConfig, draw_batch
from foundry.rl.paper_generation import deployment, simulate_generation
from foundry.rl.paper_sim import SYSTEMS, min_train_gpus, run_systems


def test_stream_trainer_hand_computed():
    ready, work = [1.0, 2.0, 10.0], [3.0, 3.0, 1.0]
    assert stream_train_end(ready, work, 1) == 11.0  # 1+3=4, max(4,2)+3=7, max(7,10)+1=11
    assert stream_train_end(ready, work, 2) == 11.0  # [1,2]: 2+6=8; [10]: 10+1
    assert stream_train_end(ready, work, 3) == 17.0  # all at once: waits for the last
    assert stream_train_end([10.0, 1.0, 2.0], [1.0, 3.0, 3.0], 1) == 11.0  # arrival order, not index
    assert stream_iteration(ready, work, 1, weight_sync=0.5) == 11.5
    assert colocated_iteration(30.0, 20.0, 2.0) == 52.0
    with pytest.raises(ValueError):
        stream_train_end(ready, work, 0)


@pytest.mark.parametrize(("t_gen", "t_train"), [(100.0, 40.0), (40.0, 100.0), (100.0, 100.0)])
def test_async_steady_state_is_max_of_generation_and_training(t_gen, t_train):
    # 50 groups streaming out over [t_gen / 50, t_gen], equal training work summing to t_train; the
    # weight transfer (0.5 s) is hidden behind training
    ready = np.linspace(t_gen / 50, t_gen, 50).tolist()
    work = [t_train / 50] * 50
    assert async_iteration(ready, work, 1, 0.5) == pytest.approx(max(t_gen, t_train))
    ends = async_schedule(ready, work, 1, 0.5, 8)
    assert all(b > a for a, b in zip(ends, ends[1:], strict=False))
    # the synchronous stream pays for what async overlaps: at least the larger stage plus the transfer
    assert stream_iteration(ready, work, 1, 0.5) >= max(t_gen, t_train) + 0.5


SRC = str(Path(__file__).resolve().parents[2] / "src")
SMALL = PaperSimConfig(num_gpus=8, num_prompts=64, samples_per_prompt=4, max_len=2000, max_batch=32)


def test_simulator_follows_the_plan():
    # two instances of one plan finish their samples exactly as when each runs alone (all arrive at 0),
    # and a batch cap of 1 runs the samples one by one in the plan's order
    cfg = SMALL.model_copy(update={"num_prompts": 4})
    lengths = draw_batch(cfg, 0).lengths
    dep = deployment(cfg)
    a, b = InstancePlan((3, 0, 7, 9, 12), 1), InstancePlan((1, 2, 4, 5, 6, 8, 10, 11, 13, 14, 15), 4)
    both = simulate_generation(cfg, DispatchPlan((a, b), "test"), lengths, dep)
    for inst in (a, b):
        alone = simulate_generation(cfg, DispatchPlan((inst,), "test"), lengths, dep)
        assert np.allclose(both[list(inst.order)], alone[list(inst.order)])
    assert all(both[s] < both[t] for s, t in zip(a.order, a.order[1:], strict=False))


def test_colocated_is_generation_plus_training_plus_switch_and_the_ladder_holds():
    # 7B on 8 H800s, 64 prompts x 4 samples up to 2K tokens, the default (noisy) ranker: each step of
    # StreamRL's ablation adds throughput here (measured 1 < 1.01 < 1.27 < 1.52)
    res = run_systems(SMALL)
    colo = res["colocated"]
    assert colo.iteration_s == pytest.approx(colo.t_gen + colo.t_train + colo.extra["switch_s"])
    tokens = float(np.sum(draw_batch(SMALL, SMALL.seed).lengths + SMALL.prompt_len))
    assert colo.t_train == pytest.approx(18 * 7.61e9 * tokens / (8 * 989e12 * 0.4))
    rates = [res[s].samples_per_s for s in SYSTEMS]
    assert all(a < b for a, b in zip(rates, rates[1:], strict=False)), rates
    stream, asyn = res["stream"], res["async"]
    assert stream.gen_gpus + stream.train_gpus <= SMALL.num_gpus
    assert stream.train_gpus >= min_train_gpus(SMALL)
    assert asyn.iteration_s == pytest.approx(max(asyn.t_gen, asyn.t_train), rel=1e-9)


def test_no_torch():
    # the controller imports these next to Ray workers; the simulation runs on machines without torch
    code = ("import sys, foundry.rl.latency, foundry.rl.dispatch, foundry.rl.resources, "
            "foundry.rl.iteration_time, foundry.rl.paper_sim; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": SRC})
