"""One RLHFuse PPO iteration at paper scale, simulated: RLHFuse-Base vs RLHFuse. Torch-free.

Reference `rl.md` §3 (arXiv 2409.13221). An iteration is generation + inference, then actor and critic
training:

- **generation + inference** (`foundry.rl.inter_fusion`): the batch is split round-robin over the
  generation instances (all GPUs, `gen_tp` each); decode steps cost PTL(BS) from foundry's roofline
  cost model of a LLaMA shape at the batch's typical context (`paper_generation.typical_ptl`); each
  sample's inference (actor old log-probs, reference, reward, critic forwards) costs
  2 · P · tokens / (F · MFU) on one instance. Base: inference after the last sample; RLHFuse: fused at
  R_t, chosen by `choose_threshold` on the previous batch (or fixed).
- **training**: each of the `batch / mini_batch` PPO mini-batches trains actor and critic as pipelines
  (TP inside a node, PP across nodes, DP over the rest). Base: seq 1F1B (actor 1F1B, then critic 1F1B),
  in seconds by its closed form (m0 + pp0 − 1)·3f0 + (m1 + pp1 − 1)·3f1. RLHFuse: the fused schedule of
  `foundry.rl.fused.search` on a `FusedConfig` with integer f0/f1 (see `discretise`); its seconds are
  Base's × fused/seq-1F1B makespan in the same integer units, so rounding scales both alike.

Every constant is a field of `RLHFuseSimConfig` with its source or "assumed"; `docs/rl-fused-simulation.md`
lists them. Not modelled: weight redistribution and data movement (paper: < 3 % of an iteration), memory
limits of the fused schedule, inference weight loading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from foundry.rl.dispatch import DispatchPlan, InstancePlan
from foundry.rl.fused import FusedConfig, lower_bound, search, seq_1f1b_makespan
from foundry.rl.inter_fusion import (
    DEFAULT_THRESHOLDS,
    FusionCosts,
    choose_threshold,
    round_robin,
    sweep_thresholds,
)
from foundry.rl.latency import PerTokenLatency
from foundry.rl.paper_config import PaperSimConfig, draw_batch
from foundry.rl.paper_generation import simulate_generation, typical_ptl
from foundry.sim.cost_models import RooflineCostModel
from foundry.sim.deployment import Deployment
from foundry.sim.hardware import ModelSpec, gpu_spec, num_kv_blocks

# LLaMA (v1) shapes: Touvron et al. 2023, "LLaMA", Table 2 (dim, heads, layers; no grouped-query attention);
# parameter counts 13.0B / 32.5B / 65.2B from the same paper.
LLAMA: dict[str, ModelSpec] = {
    "llama-13b": ModelSpec("llama-13b", 40, 5120, 40, 40, 128, 13.0e9),
    "llama-33b": ModelSpec("llama-33b", 60, 6656, 52, 52, 128, 32.5e9),
    "llama-65b": ModelSpec("llama-65b", 80, 8192, 64, 64, 128, 65.2e9),
}
# The paper's four actor/critic pairs span "13B/33B to 65B/33B" (reference §3.5); the middle two are assumed.
PAIRS: tuple[tuple[str, str], ...] = (
    ("llama-13b", "llama-33b"), ("llama-33b", "llama-13b"), ("llama-33b", "llama-33b"),
    ("llama-65b", "llama-33b"),
)
# assumed parallel layouts: generation TP and training PP grow with the model; training TP = one node
GEN_TP = {"llama-13b": 2, "llama-33b": 4, "llama-65b": 8}
TRAIN_PP = {"llama-13b": 2, "llama-33b": 4, "llama-65b": 8}


class RLHFuseSimConfig(BaseModel):
    """One PPO iteration's workload, cluster and cost constants."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    actor: str = Field("llama-65b", description="actor (and reference) model: a key of LLAMA")
    critic: str = Field("llama-33b", description="critic (and reward) model: a key of LLAMA")
    gpu: str = Field("h800", description="Hopper GPUs (paper: 256 Hopper GPUs, §3.5); H800 spec assumed")
    num_gpus: int = Field(256, ge=8, description="32 nodes x 8 GPUs (§3.5)")
    batch: int = Field(512, ge=1, description="global batch, samples per iteration (§3.5)")
    mini_batch: int = Field(64, ge=1, description="PPO mini-batch (§3.5)")
    prompt_len: int = Field(256, ge=1, description="prompt tokens, HH-RLHF dialogue context (assumed)")
    max_gen: int = Field(2048, ge=1, description="generation cap, 512-2048 in the paper (§3.5)")
    median_frac: float = Field(0.08, gt=0, le=1, description="median output = max_gen x this (assumed)")
    sigma: float = Field(1.0, ge=0, description="log-normal sigma of output lengths (assumed; p99.9/p50 "
                         ">= 10 as §3.1/§6 ask: the cap is 12.5x the median)")
    gen_tp: int | None = Field(None, ge=1, description="generation TP (None: GEN_TP of the actor, assumed)")
    max_batch: int = Field(256, ge=1, description="most running sequences per generation instance (assumed)")
    flat_tolerance: float = Field(0.1, ge=0, description="flat PTL region: PTL(b) <= (1 + this) PTL(1) "
                                  "(assumed)")
    kv_memory_utilization: float = Field(0.9, gt=0, le=1, description="memory share for weights + KV "
                                         "(assumed)")
    rdma_bytes_per_s_per_gpu: float = Field(25e9, gt=0, description="8 x 200 Gb/s RoCE per 8-GPU node (§3.5)")
    migrate_latency_s: float = Field(0.001, ge=0, description="fixed cost per migrated sample (assumed)")
    inference_forwards: tuple[str, ...] = Field(("actor", "actor", "critic", "critic"), description="old "
                                                "log-probs, reference (= actor size), critic, reward "
                                                "(= critic size) (§3.1)")
    infer_mfu: float = Field(0.4, gt=0, le=1, description="inference MFU (assumed)")
    survivors_join: Literal["own", "last"] = Field("last", description="survivor instances start inference "
                                                   "when the batch's generation ends (reading of §3.2) or "
                                                   "each at its own end")
    train_tp: int = Field(8, ge=1, description="training TP: one node over NVLink (assumed)")
    train_pp: tuple[int, int] | None = Field(None, description="actor, critic PP (None: TRAIN_PP, assumed)")
    micro_batch_size: int = Field(1, ge=1, description="samples per pipeline micro-batch (assumed)")
    train_mfu: float = Field(0.4, gt=0, le=1, description="training MFU (assumed; Megatron-class)")
    f_units: int = Field(5, ge=1, description="the larger model's stage forward in integer units "
                         "(see discretise)")
    search_iters: int = Field(50_000, ge=0, description="annealing moves of the fused schedule search (fixed "
                              "count: the same result on any machine; about 1-2 CPU s)")
    threshold: float | None = Field(None, ge=0, le=1, description="R_t (None: choose_threshold on the "
                                    "last batch)")
    threshold_draws: int = Field(4, ge=1, description="bootstrapped batches per candidate R_t")
    seed: int = 0

    @property
    def generation_tp(self) -> int:
        return self.gen_tp or GEN_TP[self.actor]

    @property
    def pipeline_pp(self) -> tuple[int, int]:
        return self.train_pp or (TRAIN_PP[self.actor], TRAIN_PP[self.critic])


# ---------------------------------------------------------------- batches and generation instances


def lengths_config(cfg: RLHFuseSimConfig) -> PaperSimConfig:
    """The StreamRL batch generator with one sample per prompt: PPO's independent log-normal lengths."""
    return PaperSimConfig(num_prompts=cfg.batch, samples_per_prompt=1, prompt_len=cfg.prompt_len,
                          max_len=cfg.max_gen, median_frac=cfg.median_frac, sigma_prompt=cfg.sigma,
                          sigma_sample=0.0, ranker_noise=0.0, seed=cfg.seed)


def draw_lengths(cfg: RLHFuseSimConfig, seed: int) -> np.ndarray:
    return draw_batch(lengths_config(cfg), seed).lengths


def gen_deployment(cfg: RLHFuseSimConfig) -> Deployment:
    """One generation instance: a roofline cost model of the actor on `gen_tp` GPUs, KV from what is left."""
    gpu, model, tp = gpu_spec(cfg.gpu), LLAMA[cfg.actor], cfg.generation_tp
    blocks = num_kv_blocks(gpu, model, 16, tp=tp, memory_utilization=cfg.kv_memory_utilization)
    return Deployment(RooflineCostModel(gpu, model, tp), 16, blocks, 0, model.kv_bytes_per_token,
                      gpu.link_bandwidth * tp)


def num_instances(cfg: RLHFuseSimConfig) -> int:
    return cfg.num_gpus // cfg.generation_tp


def infer_s_per_token(cfg: RLHFuseSimConfig) -> float:
    """2 · ΣP · 1 token / (gen_tp · F · MFU): every inference forward of one token on one instance."""
    params = sum(LLAMA[cfg.actor if m == "actor" else cfg.critic].num_params for m in cfg.inference_forwards)
    return 2 * params / (cfg.generation_tp * gpu_spec(cfg.gpu).peak_flops * cfg.infer_mfu)


def fusion_costs(cfg: RLHFuseSimConfig) -> FusionCosts:
    """Inference per token; migration = the sample's KV over the instance's RDMA NICs, plus a latency."""
    dep = gen_deployment(cfg)
    tp = cfg.generation_tp
    return FusionCosts(infer_s_per_token=infer_s_per_token(cfg), migrate_s_per_sample=cfg.migrate_latency_s,
                       migrate_s_per_token=dep.kv_bytes_per_token / (cfg.rdma_bytes_per_s_per_gpu * tp),
                       prompt_len=cfg.prompt_len, kv_capacity_tokens=dep.num_device_blocks * dep.block_size,
                       flat_tolerance=cfg.flat_tolerance, survivors_join=cfg.survivors_join)


def gen_ptl(cfg: RLHFuseSimConfig, history: np.ndarray) -> PerTokenLatency:
    return typical_ptl(lengths_config(cfg), gen_deployment(cfg), history)


# ---------------------------------------------------------------- training pipelines


def stage_forward_s(cfg: RLHFuseSimConfig, model: str, pp: int, seq_tokens: float) -> float:
    """One micro-batch through one pipeline stage: 2 · (P / pp) · tokens / (tp · F · MFU) (reference §6)."""
    tokens = cfg.micro_batch_size * seq_tokens
    flops_per_s = cfg.train_tp * gpu_spec(cfg.gpu).peak_flops * cfg.train_mfu
    return 2 * LLAMA[model].num_params / pp * tokens / flops_per_s


def discretise(f_large: float, f_small: float, units: int) -> tuple[int, int]:
    """Integer forward times for `FusedConfig`: the larger model's stage forward is `units`, the other
    round(units · f_small / f_large) (at least 1). The relative error of the ratio is at most 1/(2·units)
    of the larger forward."""
    return units, max(1, round(units * f_small / f_large))


@dataclass(frozen=True)
class Pipelines:
    fused_cfg: FusedConfig
    large: str  # "actor" or "critic": which model is model 0 of the FusedConfig
    f_s: tuple[float, float]  # stage forward seconds of model 0, model 1
    seq_units: int
    fused_units: int
    lower_bound_units: int
    seq_s: float  # one mini-batch, seq 1F1B, seconds (closed form)

    @property
    def fused_s(self) -> float:
        return self.seq_s * self.fused_units / self.seq_units


def pipelines(cfg: RLHFuseSimConfig, seq_tokens: float) -> Pipelines:
    """The fused actor/critic pipeline of one mini-batch: model 0 is the larger model (ties: the actor)."""
    pp_a, pp_c = cfg.pipeline_pp
    actor_large = LLAMA[cfg.actor].num_params >= LLAMA[cfg.critic].num_params
    (m0_name, pp0), (m1_name, pp1) = (((cfg.actor, pp_a), (cfg.critic, pp_c)) if actor_large
                                      else ((cfg.critic, pp_c), (cfg.actor, pp_a)))
    nodes = cfg.train_tp * pp0
    if cfg.num_gpus % nodes or pp0 % pp1:
        raise ValueError(f"train_pp: {pp0}/{pp1} x TP {cfg.train_tp} must divide {cfg.num_gpus} GPUs, "
                         "and pp1 divide pp0")
    dp = cfg.num_gpus // nodes
    per_dp = cfg.mini_batch / (dp * cfg.micro_batch_size)
    m0, m1 = per_dp, per_dp / (pp0 // pp1)
    if m0 != int(m0) or m1 != int(m1) or m1 < 1:
        raise ValueError(f"mini_batch: {cfg.mini_batch} does not split into whole micro-batches over DP {dp} "
                         f"(and {pp0 // pp1} critic replicas)")
    f0 = stage_forward_s(cfg, m0_name, pp0, seq_tokens)
    f1 = stage_forward_s(cfg, m1_name, pp1, seq_tokens)
    f0u, f1u = discretise(f0, f1, cfg.f_units)
    fc = FusedConfig(pp0, pp1, int(m0), int(m1), f0u, f1u)
    fused, seq_u, lb = _search(fc, cfg.search_iters, cfg.seed)
    seq_s = (m0 + pp0 - 1) * 3 * f0 + (m1 + pp1 - 1) * 3 * f1
    return Pipelines(fc, "actor" if actor_large else "critic", (f0, f1), seq_u, fused, lb, seq_s)


@lru_cache(maxsize=64)
def _search(fc: FusedConfig, iters: int, seed: int) -> tuple[int, int, int]:
    """(fused makespan, seq-1F1B makespan, lower bound) in units; cached: pairs often share a config."""
    return search(fc, seed=seed, max_iters=iters).makespan, seq_1f1b_makespan(fc), lower_bound(fc)


# ---------------------------------------------------------------- the iteration


@dataclass
class IterationResult:
    cfg: RLHFuseSimConfig
    threshold: float
    base_gen_infer_s: float
    fused_gen_infer_s: float
    base_gen_s: float
    fused_gen_s: float
    base_train_s: float
    fused_train_s: float
    pipelines: Pipelines
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def base_s(self) -> float:
        return self.base_gen_infer_s + self.base_train_s

    @property
    def fused_s(self) -> float:
        return self.fused_gen_infer_s + self.fused_train_s

    def speedups(self) -> dict[str, float]:
        return {"gen_infer_x": self.base_gen_infer_s / self.fused_gen_infer_s,
                "train_x": self.base_train_s / self.fused_train_s, "end_to_end_x": self.base_s / self.fused_s}


def threshold_sweep(cfg: RLHFuseSimConfig, candidates: tuple[float, ...] = DEFAULT_THRESHOLDS) -> list[dict]:
    """Gen+inference of this iteration's batch at every candidate R_t."""
    batch, history = draw_lengths(cfg, cfg.seed), draw_lengths(cfg, cfg.seed + 1)
    ptl = gen_ptl(cfg, history)
    res = sweep_thresholds(batch.tolist(), num_instances(cfg), ptl, cfg.max_batch, fusion_costs(cfg),
                           candidates)
    return [{"threshold": r.threshold, "total_s": r.total, "gen_end_s": r.gen_end, "survivors": r.survivors,
             "kept_instances": r.num_kept, "migrated": r.migrated} for r in res]


def simulate_iteration(cfg: RLHFuseSimConfig) -> IterationResult:
    """Base and RLHFuse on the same batch (seed); R_t chosen on the previous batch (seed + 1)."""
    batch, history = draw_lengths(cfg, cfg.seed), draw_lengths(cfg, cfg.seed + 1)
    ptl, costs, n_inst = gen_ptl(cfg, history), fusion_costs(cfg), num_instances(cfg)
    if cfg.threshold is None:
        t = choose_threshold(history.tolist(), n_inst, ptl, cfg.max_batch, costs.infer_s_per_sample,
                             costs.migrate_s_per_sample, costs=costs, num_draws=cfg.threshold_draws,
                             seed=cfg.seed)
    else:
        t = cfg.threshold
    base, fused = sweep_thresholds(batch.tolist(), n_inst, ptl, cfg.max_batch, costs, (0.0, t))
    seq_tokens = cfg.prompt_len + float(batch.mean())
    pipes = pipelines(cfg, seq_tokens)
    n_mb = math.ceil(cfg.batch / cfg.mini_batch)
    infer_total = sum(costs.infer_s(x) for x in batch) / n_inst
    extra = {"instances": n_inst, "ptl1_s": ptl(1), "survivors": fused.survivors, "kept": fused.num_kept,
             "migrated": fused.migrated, "infer_share_of_base": infer_total / base.total,
             "p999_over_p50": float(np.quantile(batch, 0.999) / np.median(batch)),
             "max_len": float(batch.max()), "mean_len": float(batch.mean())}
    return IterationResult(cfg, t, base.total, fused.total, base.gen_end, fused.gen_end, n_mb * pipes.seq_s,
                           n_mb * pipes.fused_s, pipes, extra)


def simulator_check(cfg: RLHFuseSimConfig) -> dict[str, float]:
    """Base generation of this batch on foundry's multi-instance simulator (prefill, context-dependent decode
    steps, the engine's batching) next to the latency model's (one PTL at the typical context, no prefill)."""
    batch, history = draw_lengths(cfg, cfg.seed), draw_lengths(cfg, cfg.seed + 1)
    n_inst = num_instances(cfg)
    plan = DispatchPlan(tuple(InstancePlan(tuple(o), cfg.max_batch) for o in round_robin(cfg.batch, n_inst)),
                        "round-robin", {})
    sim = simulate_generation(lengths_config(cfg), plan, batch, gen_deployment(cfg))
    model = sweep_thresholds(batch.tolist(), n_inst, gen_ptl(cfg, history), cfg.max_batch, fusion_costs(cfg),
                             (0.0,))[0]
    return {"simulator_gen_s": float(sim.max()), "latency_model_gen_s": model.gen_end}
