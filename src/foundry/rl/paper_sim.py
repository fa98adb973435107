"""One StreamRL-style RL iteration at paper scale, simulated: colocated vs skew-aware vs disaggregated
streaming vs one-step async. Torch-free.

Generation runs through foundry's multi-instance simulator (`paper_generation.py`), dispatched by
`foundry.rl.dispatch`. Training is the closed form of reference `rl.md` §6: flops_per_token_param · P ·
tokens / (GPUs · peak · MFU). The systems differ in who generates, how samples are dispatched, and
what overlaps (`foundry.rl.iteration_time`):

- ``colocated``: every GPU generates (random dispatch, as a data-parallel split), then every GPU
  trains, plus the offload/reload switch;
- ``colocated+skew``: the same with StreamRL's skewness-aware dispatch;
- ``stream``: StreamRL-Sync: the pool split by Algorithm 1 (`foundry.rl.resources`), skew-aware
  dispatch, training on the streamed groups, weights broadcast before the next generation;
- ``async``: the same split and stream, one-step staleness, the broadcast overlapped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from foundry.rl.dispatch import makespan
from foundry.rl.iteration_time import async_iteration, colocated_iteration, stream_iteration
from foundry.rl.paper_config import Batch, PaperSimConfig, draw_batch
from foundry.rl.paper_generation import deployment, generate, longest_alone_seconds, plan_for, typical_ptl
from foundry.rl.resources import Allocation, allocate_one_pool, allocate_two_pools
from foundry.sim.hardware import gpu_spec, model_spec

System = Literal["colocated", "colocated+skew", "stream", "async"]
SYSTEMS: tuple[System, ...] = ("colocated", "colocated+skew", "stream", "async")


def train_seconds(cfg: PaperSimConfig, tokens: float, gpus: int, gpu: str | None = None) -> float:
    """flops_per_token_param · P · tokens / (gpus · peak · MFU) (reference §6)."""
    peak = gpu_spec(gpu or cfg.train_gpu).peak_flops
    return cfg.flops_per_token_param * model_spec(cfg.model).num_params * tokens / (gpus * peak * cfg.mfu)


def min_train_gpus(cfg: PaperSimConfig) -> int:
    """Enough GPUs to hold one model's training state in 90% of memory (StreamRL's trainer offloads
    the models it is not training to the CPU, reference §2.1)."""
    state = cfg.state_bytes_per_param * model_spec(cfg.model).num_params
    return math.ceil(state / (0.9 * gpu_spec(cfg.train_gpu).mem_bytes))


def switch_seconds(cfg: PaperSimConfig, gpus: int) -> float:
    """Colocated switch per iteration: each GPU offloads and reloads its shard of the training state
    and loads the generation weights, over its host link (verl's hybrid engine, vLLM sleep mode)."""
    m, g = model_spec(cfg.model), gpu_spec(cfg.train_gpu)
    state = 2 * cfg.trained_models * cfg.state_bytes_per_param * m.num_params / gpus
    weights = m.weight_bytes / cfg.gen_tp
    return (state + weights) / g.link_bandwidth


def weight_sync_seconds(cfg: PaperSimConfig) -> float:
    return model_spec(cfg.model).weight_bytes / cfg.weight_sync_bandwidth


def group_ready_and_work(cfg: PaperSimConfig, batch: Batch, finish: np.ndarray,
                         train_gpus: int) -> tuple[list[float], list[float]]:
    """Per group: when its last sample finishes, and its training seconds on `train_gpus`."""
    ready = np.zeros(cfg.num_prompts)
    np.maximum.at(ready, batch.groups, finish)
    tokens = np.bincount(batch.groups, weights=batch.lengths + cfg.prompt_len, minlength=cfg.num_prompts)
    return ready.tolist(), [train_seconds(cfg, float(t), train_gpus) for t in tokens]


@dataclass
class SystemResult:
    system: str
    iteration_s: float
    samples_per_s: float
    t_gen: float
    t_train: float
    gen_gpus: int
    train_gpus: int
    extra: dict[str, float] = field(default_factory=dict)


def estimators(cfg: PaperSimConfig, history: Batch) -> tuple[Callable[[int], float], Callable[[int], float]]:
    """Algorithm 1's P_gen(instances) and P_train(GPUs), from last iteration's batch: the latency
    model's `makespan` of the skew-aware plan, and the training closed form."""
    ptl = typical_ptl(cfg, deployment(cfg), history.lengths)
    lengths = history.lengths.tolist()
    tokens = float(np.sum(history.lengths + cfg.prompt_len))

    def p_gen(x: int) -> float:
        return makespan(plan_for(cfg, "skew", x, history, history, ptl), lengths, ptl)

    def p_train(gpus: int) -> float:
        return train_seconds(cfg, tokens, gpus)

    return p_gen, p_train


def split(cfg: PaperSimConfig, history: Batch) -> Allocation:
    """Algorithm 1 over the pool, counted in generation instances (`gen_tp` GPUs each)."""
    p_gen, p_train = estimators(cfg, history)
    return allocate_one_pool(cfg.num_gpus // cfg.gen_tp, p_gen, lambda y: p_train(y * cfg.gen_tp),
                             min_train=math.ceil(min_train_gpus(cfg) / cfg.gen_tp))


def run_systems(cfg: PaperSimConfig) -> dict[str, SystemResult]:
    """Every system on the same batch (seed) with the same history (seed + 1)."""
    batch, history = draw_batch(cfg, cfg.seed), draw_batch(cfg, cfg.seed + 1)
    tokens = float(np.sum(batch.lengths + cfg.prompt_len))
    n, out = cfg.num_samples, {}
    t_train_all = train_seconds(cfg, tokens, cfg.num_gpus)
    switch = switch_seconds(cfg, cfg.num_gpus)
    bound = longest_alone_seconds(cfg, deployment(cfg), int(batch.lengths.max()))
    for system, method in (("colocated", "random"), ("colocated+skew", "skew")):
        gen = generate(cfg, method, cfg.num_gpus, batch, history)
        it = colocated_iteration(gen.seconds, t_train_all, switch)
        out[system] = SystemResult(system, it, n / it, gen.seconds, t_train_all, cfg.num_gpus, cfg.num_gpus,
                                   {"switch_s": switch, "longest_alone_s": bound})
    alloc = split(cfg, history)
    gen_gpus, train_gpus = alloc.gen_units * cfg.gen_tp, alloc.train_units * cfg.gen_tp
    gen = generate(cfg, "skew", gen_gpus, batch, history)
    ready, work = group_ready_and_work(cfg, batch, gen.finish, train_gpus)
    mb, sync = cfg.micro_batch_groups, weight_sync_seconds(cfg)
    t_train = float(sum(work))
    extra = {"predicted_t_gen": alloc.t_gen, "predicted_t_train": alloc.t_train, "weight_sync_s": sync}
    for system, it in (("stream", stream_iteration(ready, work, mb, sync)),
                       ("async", async_iteration(ready, work, mb, sync))):
        out[system] = SystemResult(system, it, n / it, gen.seconds, t_train, gen_gpus, train_gpus, extra)
    return out


def overlap_sweep(cfg: PaperSimConfig, gen_gpus: int, train_gpus: list[int]) -> list[dict[str, float]]:
    """One generation run on `gen_gpus`; for each trainer size, the disaggregated batch (no overlap),
    stream and async iteration times: how the gain of overlap depends on T_gen / T_train."""
    batch, history = draw_batch(cfg, cfg.seed), draw_batch(cfg, cfg.seed + 1)
    gen = generate(cfg, "skew", gen_gpus, batch, history)
    mb, sync = cfg.micro_batch_groups, weight_sync_seconds(cfg)
    rows = []
    for y in train_gpus:
        ready, work = group_ready_and_work(cfg, batch, gen.finish, y)
        t_train = float(sum(work))
        rows.append({"train_gpus": y, "t_gen": gen.seconds, "t_train": t_train,
                     "gen_over_train": gen.seconds / t_train,
                     "batch_s": gen.seconds + t_train + sync,
                     "stream_s": stream_iteration(ready, work, mb, sync),
                     "async_s": async_iteration(ready, work, mb, sync)})
    return rows


def heterogeneous(cfg: PaperSimConfig, gen_pool: int, train_pool: int) -> SystemResult:
    """Async with generation on `gen_pool` GPUs of cfg.gen_gpu and training on `train_pool` of
    cfg.train_gpu (two fixed pools: Algorithm 1's two-pool variant sizes each side)."""
    batch, history = draw_batch(cfg, cfg.seed), draw_batch(cfg, cfg.seed + 1)
    p_gen, p_train = estimators(cfg, history)
    alloc = allocate_two_pools(gen_pool // cfg.gen_tp, train_pool, p_gen, p_train,
                               min_train=min(train_pool, min_train_gpus(cfg)))
    gen_gpus = alloc.gen_units * cfg.gen_tp
    gen = generate(cfg, "skew", gen_gpus, batch, history)
    ready, work = group_ready_and_work(cfg, batch, gen.finish, alloc.train_units)
    it = async_iteration(ready, work, cfg.micro_batch_groups, weight_sync_seconds(cfg))
    return SystemResult("async-hetero", it, cfg.num_samples / it, gen.seconds, float(sum(work)), gen_gpus,
                        alloc.train_units)
