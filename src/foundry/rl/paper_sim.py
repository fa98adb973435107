"""One StreamRL-style RL iteration at paper scale, simulated: colocated vs skew-aware vs disaggregated
streaming vs one-step async. Torch-free.

Generation runs through foundry's multi-instance simulator (`foundry.sim.Simulator`: the engine's
core with the FCFS policy on a roofline cost model), each instance admitting the samples a
`foundry.rl.dispatch` plan gives it, in the plan's order and at the plan's batch cap. Training is the
closed form of reference `rl.md` §6: flops_per_token_param · P · tokens / (GPUs · peak · MFU). The
systems differ in who generates, how samples are dispatched, and what overlaps
(`foundry.rl.iteration_time`):

- ``colocated``: every GPU generates (random dispatch, as a data-parallel split), then every GPU
  trains, plus the offload/reload switch;
- ``colocated+skew``: the same with StreamRL's skewness-aware dispatch;
- ``stream``: StreamRL-Sync: the pool split by Algorithm 1 (`foundry.rl.resources`), skew-aware
  dispatch, training on the streamed groups, weights broadcast before the next generation;
- ``async``: the same split and stream, one-step staleness, the broadcast overlapped.

Every constant is a field of `PaperSimConfig`, with its source or the word "assumed";
`docs/rl-simulation.md` lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from foundry.rl.dispatch import DispatchPlan, dispatch_random, dispatch_skew, makespan
from foundry.rl.iteration_time import async_iteration, colocated_iteration, stream_iteration
from foundry.rl.latency import PerTokenLatency
from foundry.rl.resources import Allocation, allocate_one_pool, allocate_two_pools
from foundry.serve.bench.workloads import RequestSpec, Workload
from foundry.serve.block_manager import BlockManager
from foundry.serve.config import SchedulerConfig
from foundry.serve.core import EngineCore
from foundry.serve.sequence import Sequence as EngineSequence
from foundry.sim.deployment import Deployment, resolve_deployment
from foundry.sim.dispatch import Dispatcher
from foundry.sim.executor import CostModelExecutor
from foundry.sim.hardware import gpu_spec, model_spec
from foundry.sim.run import make_policy
from foundry.sim.simulator import Instance, Simulator

System = Literal["colocated", "colocated+skew", "stream", "async"]
SYSTEMS: tuple[System, ...] = ("colocated", "colocated+skew", "stream", "async")


class PaperSimConfig(BaseModel):
    """One RL iteration's workload, cluster and cost constants."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field("qwen2.5-7b", description="a `foundry.sim.hardware` model (Qwen2.5 shapes)")
    num_gpus: int = Field(16, ge=2, description="one pool of GPUs (homogeneous runs)")
    gen_gpu: str = Field("h800", description="GPU that generates")
    train_gpu: str = Field("h800", description="GPU that trains")
    gen_tp: int = Field(1, ge=1, description="tensor parallelism of a generation instance")
    num_prompts: int = Field(256, ge=1, description="prompts per iteration (assumed)")
    samples_per_prompt: int = Field(8, ge=1, description="GRPO group size n (assumed)")
    prompt_len: int = Field(512, ge=1, description="prompt tokens (assumed)")
    max_len: int = Field(20000, ge=1, description="output cap: the 5K/10K/20K datasets (reference §2.5)")
    median_frac: float = Field(0.0625, gt=0, le=1, description="median output = max_len x this (assumed)")
    sigma_prompt: float = Field(0.9, ge=0, description="log-normal sigma of a prompt's difficulty (assumed)")
    sigma_sample: float = Field(0.45, ge=0, description="log-normal sigma within a group (assumed)")
    ranker_noise: float = Field(0.12, ge=0, description="log-noise of the ranker's score (0: it ranks "
                                "prompts perfectly); 0.12 gives recall@20% near the paper's 0.87 (§2.4)")
    oracle_ranker: bool = Field(False, description="dispatch on the true lengths (no history): an upper "
                                "bound for skew-aware dispatch")
    alpha: float = Field(0.2, ge=0, le=1, description="long-tail fraction (Algorithm 2, reference §2.4)")
    max_batch: int = Field(256, ge=1, description="most running sequences per instance (vLLM's default)")
    max_num_batched_tokens: int = Field(8192, ge=1, description="tokens per engine step (assumed)")
    flops_per_token_param: float = Field(18.0, gt=0, description="PPO: actor + critic train (6+6), "
                                         "ref, old-logprob and value forwards (2+2+2) (reference §6)")
    mfu: float = Field(0.4, gt=0, le=1, description="training MFU (assumed; Megatron-class)")
    trained_models: int = Field(2, ge=1, description="models with optimizer state (PPO: actor, critic)")
    state_bytes_per_param: float = Field(16.0, gt=0, description="bf16 weight + grad, fp32 master + Adam")
    micro_batch_samples: int = Field(64, ge=1, description="streamed training micro-batch (assumed)")
    weight_sync_bandwidth: float = Field(50e9, gt=0, description="bytes/s of the weight broadcast: one "
                                         "400 Gb/s NIC (assumed)")
    seed: int = 0

    @property
    def num_samples(self) -> int:
        return self.num_prompts * self.samples_per_prompt


@dataclass(frozen=True)
class Batch:
    """One iteration's samples: true lengths, group ids, and the ranker's per-sample score."""

    lengths: np.ndarray
    groups: np.ndarray
    scores: np.ndarray

    def recall(self, alpha: float) -> float:
        """Recall of the true top-α groups (by mean length) among the ranker's top α."""
        num = len(np.unique(self.groups))
        k = max(1, math.ceil(alpha * num))
        true = np.bincount(self.groups, weights=self.lengths) / np.bincount(self.groups)
        pred = np.bincount(self.groups, weights=self.scores) / np.bincount(self.groups)
        return len(set(np.argsort(-true)[:k]) & set(np.argsort(-pred)[:k])) / k


def draw_batch(cfg: PaperSimConfig, seed: int) -> Batch:
    """Heavy-tailed lengths: log L = log(median) + σ_p·z_prompt + σ_s·z_sample, truncated at max_len
    (a truncated response stops at the cap). The ranker sees σ_p·z_prompt plus noise: it ranks prompts."""
    rng = np.random.default_rng(seed)
    n, m = cfg.num_prompts, cfg.samples_per_prompt
    z_prompt = np.repeat(rng.standard_normal(n), m)
    z_sample = rng.standard_normal(n * m)
    median = cfg.median_frac * cfg.max_len
    lengths = np.clip(np.ceil(median * np.exp(cfg.sigma_prompt * z_prompt + cfg.sigma_sample * z_sample)),
                      1, cfg.max_len).astype(np.int64)
    noise = np.repeat(rng.standard_normal(n), m) * cfg.ranker_noise
    scores = median * np.exp(cfg.sigma_prompt * z_prompt + noise)
    return Batch(lengths, np.repeat(np.arange(n), m), scores)


class PlanDispatcher(Dispatcher):
    """Places each request where a fixed `DispatchPlan` says (requests named ``s<sample index>``)."""

    name = "plan"

    def __init__(self, plan: DispatchPlan) -> None:
        self.where = {f"s{s}": k for s, k in plan.instance_of().items()}

    def choose(self, seq: EngineSequence, cores: list[EngineCore]) -> int:
        return self.where[seq.request_id]


def deployment(cfg: PaperSimConfig, gpu: str | None = None) -> Deployment:
    return resolve_deployment(f"roofline:{gpu or cfg.gen_gpu}:{cfg.model}:tp{cfg.gen_tp}", num_host_blocks=0)


def simulate_generation(cfg: PaperSimConfig, plan: DispatchPlan, lengths: np.ndarray,
                        dep: Deployment) -> np.ndarray:
    """Every sample's finish time (s) when `plan` runs on the simulator, all prompts arriving at 0.
    The workload lists each instance's samples in admission order, so FCFS admits them in that order."""
    order = [s for inst in plan.instances for s in inst.order]
    specs = tuple(RequestSpec(0.0, cfg.prompt_len, int(lengths[s])) for s in order)
    instances = []
    for inst in plan.instances:
        sched = SchedulerConfig(policy="fcfs", max_num_seqs=inst.max_batch,
                                max_num_batched_tokens=cfg.max_num_batched_tokens)
        memory = BlockManager(dep.block_size, dep.num_device_blocks, 0)
        executor = CostModelExecutor(dep.cost_model, dep.kv_bytes_per_block, dep.link_bandwidth)
        instances.append(Instance(make_policy(sched, dep), memory, executor))
    result = Simulator(instances, PlanDispatcher(plan)).run(Workload("rl-iteration", specs),
                                                             [f"s{s}" for s in order])
    finish = np.zeros(len(lengths))
    for s, rec in zip(order, result.records, strict=True):
        if rec.error or rec.finish_time is None:
            raise RuntimeError(f"sample {s} did not finish: {rec.error}")
        finish[s] = rec.finish_time
    return finish


def typical_ptl(cfg: PaperSimConfig, dep: Deployment, history: np.ndarray) -> PerTokenLatency:
    """The PTL a profile would give at the token-weighted mean context of the history (where decode
    steps spend their time: a long sample's steps dominate)."""
    h = history.astype(float)
    context = cfg.prompt_len + float(np.sum(h * h) / (2 * np.sum(h)))
    return PerTokenLatency.from_cost_model(dep.cost_model, int(context))


@dataclass
class Generation:
    finish: np.ndarray  # per sample
    plan: DispatchPlan

    @property
    def seconds(self) -> float:
        return float(self.finish.max())


def plan_for(cfg: PaperSimConfig, method: Literal["random", "skew"], num_instances: int, batch: Batch,
             history: Batch, ptl: PerTokenLatency) -> DispatchPlan:
    if method == "random":
        return dispatch_random(cfg.num_samples, num_instances, cfg.max_batch, seed=cfg.seed,
                               groups=batch.groups.tolist())
    if cfg.oracle_ranker:
        return dispatch_skew(batch.lengths.tolist(), num_instances, ptl, cfg.max_batch, alpha=cfg.alpha,
                             groups=batch.groups.tolist())
    return dispatch_skew(batch.scores.tolist(), num_instances, ptl, cfg.max_batch, alpha=cfg.alpha,
                         history=history.lengths.tolist(), groups=batch.groups.tolist())


def generate(cfg: PaperSimConfig, method: Literal["random", "skew"], gen_gpus: int, batch: Batch,
             history: Batch, gpu: str | None = None) -> Generation:
    dep = deployment(cfg, gpu)
    ptl = typical_ptl(cfg, dep, history.lengths)
    plan = plan_for(cfg, method, gen_gpus // cfg.gen_tp, batch, history, ptl)
    return Generation(simulate_generation(cfg, plan, batch.lengths, dep), plan)


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


def split(cfg: PaperSimConfig, history: Batch) -> Allocation:
    """Algorithm 1 over the pool, in generation instances: P_gen from the latency model on last
    iteration's lengths (skew-aware plan, `makespan`), P_train from the closed form."""
    dep = deployment(cfg)
    ptl = typical_ptl(cfg, dep, history.lengths)
    lengths = history.lengths.tolist()
    tokens = float(np.sum(history.lengths + cfg.prompt_len))

    def p_gen(x: int) -> float:
        return makespan(plan_for(cfg, "skew", x, history, history, ptl), lengths, ptl)

    def p_train(y: int) -> float:
        return train_seconds(cfg, tokens, y * cfg.gen_tp)

    units = cfg.num_gpus // cfg.gen_tp
    return allocate_one_pool(units, p_gen, p_train, min_train=math.ceil(min_train_gpus(cfg) / cfg.gen_tp))


def run_systems(cfg: PaperSimConfig) -> dict[str, SystemResult]:
    """Every system on the same batch (seed) with the same history (seed + 1)."""
    batch, history = draw_batch(cfg, cfg.seed), draw_batch(cfg, cfg.seed + 1)
    tokens = float(np.sum(batch.lengths + cfg.prompt_len))
    n, out = cfg.num_samples, {}
    t_train_all = train_seconds(cfg, tokens, cfg.num_gpus)
    switch = switch_seconds(cfg, cfg.num_gpus)
    for system, method in (("colocated", "random"), ("colocated+skew", "skew")):
        gen = generate(cfg, method, cfg.num_gpus, batch, history)
        it = colocated_iteration(gen.seconds, t_train_all, switch)
        out[system] = SystemResult(system, it, n / it, gen.seconds, t_train_all, cfg.num_gpus, cfg.num_gpus,
                                   {"switch_s": switch})
    alloc = split(cfg, history)
    gen_gpus, train_gpus = alloc.gen_units * cfg.gen_tp, alloc.train_units * cfg.gen_tp
    gen = generate(cfg, "skew", gen_gpus, batch, history)
    ready, work = group_ready_and_work(cfg, batch, gen.finish, train_gpus)
    mb, sync = max(1, math.ceil(cfg.micro_batch_samples / cfg.samples_per_prompt)), weight_sync_seconds(cfg)
    t_train = float(sum(work))
    extra = {"predicted_t_gen": alloc.t_gen, "predicted_t_train": alloc.t_train, "weight_sync_s": sync}
    for system, it in (("stream", float(stream_iteration(ready, work, mb, sync))),
                       ("async", float(async_iteration(ready, work, mb, sync)))):
        out[system] = SystemResult(system, it, n / it, gen.seconds, t_train, gen_gpus, train_gpus, extra)
    return out


def overlap_sweep(cfg: PaperSimConfig, gen_gpus: int, train_gpus: list[int]) -> list[dict[str, float]]:
    """One generation run on `gen_gpus`; for each trainer size, the disaggregated batch (no overlap),
    stream and async iteration times: how the gain of overlap depends on T_gen / T_train."""
    batch, history = draw_batch(cfg, cfg.seed), draw_batch(cfg, cfg.seed + 1)
    gen = generate(cfg, "skew", gen_gpus, batch, history)
    mb, sync = max(1, math.ceil(cfg.micro_batch_samples / cfg.samples_per_prompt)), weight_sync_seconds(cfg)
    rows = []
    for y in train_gpus:
        ready, work = group_ready_and_work(cfg, batch, gen.finish, y)
        t_train = sum(work)
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
    dep = deployment(cfg)
    ptl = typical_ptl(cfg, dep, history.lengths)
    lengths = history.lengths.tolist()
    tokens = float(np.sum(history.lengths + cfg.prompt_len))
    alloc = allocate_two_pools(
        gen_pool // cfg.gen_tp, train_pool,
        lambda x: makespan(plan_for(cfg, "skew", x, history, history, ptl), lengths, ptl),
        lambda y: train_seconds(cfg, tokens, y), min_train=min(train_pool, min_train_gpus(cfg)))
    gen_gpus = alloc.gen_units * cfg.gen_tp
    gen = generate(cfg, "skew", gen_gpus, batch, history)
    ready, work = group_ready_and_work(cfg, batch, gen.finish, alloc.train_units)
    mb = max(1, math.ceil(cfg.micro_batch_samples / cfg.samples_per_prompt))
    it = async_iteration(ready, work, mb, weight_sync_seconds(cfg))
    return SystemResult("async-hetero", it, cfg.num_samples / it, gen.seconds, sum(work), gen_gpus,
                        alloc.train_units)
