"""LoongServe's non-elastic baselines on the existing simulator: chunked prefill (SplitFuse), vLLM, and
prefill/decode disaggregation (DistServe-like). Settings from the serving reference §3.5.

All three run the engine's own `EngineCore` and policies (`foundry.sim.simulate`) with the LWM-7B/A800
step models of `calibration.py` as `LinearCostModel`s; nothing here schedules a request itself.

- **SplitFuse** (LightLLM's, TP8): every step runs all decoding requests plus prefill chunks of at most
  `chunk` tokens (LightLLM splits each prefill to its ``splitfuse_block_size``; decodes are not
  counted against it). The engine's `vllm` policy has one token budget for both, so `SplitFusePolicy`
  sets that budget, per step, to `chunk` + the running decodes. One deviation: a request whose prefill
  is already under way and is older than the decodes may take up to that whole budget in one step.
- **vLLM** (TP8): the `vllm` policy with 600,000 batched tokens and 1,024 sequences (whole prompts).
  Our policy mixes prefills into decode steps (V1-style); the vLLM of the paper ran prefill-only steps.
- **Disaggregation** (prefill TP4, decode TP2·PP2, FCFS, decode batch <= 128): two stages, each an
  `EngineCore`. The prefill stage (one TP4 instance, `fcfs`, 16k-token steps) computes each prompt and
  its first token; the KV then moves at 400 GB/s per rank over 4 ranks; the decode stage (a 4-GPU
  group, `fcfs`, which reserves prompt + output at admission) installs the KV in a step that costs a
  decode iteration and emits the next token there, then decodes the rest. Simplifications: PP2 is
  modelled as its 4 GPUs' bandwidth (no pipeline bubbles, no micro-batch overlap), and the prefill
  stage never waits for decode-side memory (no back-pressure).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import inf

from foundry.serve.bench.report import RequestRecord
from foundry.serve.bench.workloads import RequestSpec, Workload
from foundry.serve.block_manager import BlockManager
from foundry.serve.policies.base import SchedulerOutput
from foundry.serve.policies.vllm import VLLMPolicy
from foundry.sim.cost_models.fitted import LinearCostModel
from foundry.sim.deployment import Deployment
from foundry.sim.elastic.calibration import KV_BYTES_PER_TOKEN, KV_CAPACITY, LWM7BA800, kv_seconds_per_token
from foundry.sim.run import simulate

BLOCK_SIZE = 16
# LightLLM SplitFuse chunk per dataset (§3.5); Mixed's 2048 for a dataset not listed
SPLITFUSE_CHUNK = {"sharegpt": 256, "leval": 2048, "lveval": 16384, "mixed": 2048, "zipf": 512}
# LoongServe's running_max_req_size per dataset (§3.5), used as every system's max batch
MAX_NUM_SEQS = {"sharegpt": 1024, "leval": 256, "lveval": 256, "mixed": 1024, "zipf": 1024}
VLLM_BATCHED_TOKENS = 600_000
DISAGG_PREFILL_TOKENS = 16_384
DISAGG_MAX_BATCH = 128
DISAGG_RANKS = 4  # KV moves from the 4 prefill ranks


def dataset_family(dataset: str) -> str:
    return "zipf" if dataset.startswith("zipf") else dataset


def _deployment(cost: LinearCostModel, capacity_tokens: int) -> Deployment:
    return Deployment(cost, BLOCK_SIZE, capacity_tokens // BLOCK_SIZE, 0, float(KV_BYTES_PER_TOKEN), inf,
                      info={"cost": cost.name})


class SplitFusePolicy(VLLMPolicy):
    """The `vllm` policy with a per-step budget of `chunk` prefill tokens on top of the running decodes."""

    name = "splitfuse"

    def __init__(self, max_num_seqs: int, chunk: int) -> None:
        super().__init__(max_num_seqs, chunk + max_num_seqs)  # the core checks steps against this ceiling
        self.chunk = chunk

    def schedule(self, now: float, memory: BlockManager) -> SchedulerOutput:
        num_decodes = sum(1 for s in self.running
                          if s.num_uncomputed_tokens == 1 and s.num_computed_tokens > 0)
        ceiling = self.max_num_batched_tokens
        self.max_num_batched_tokens = self.chunk + num_decodes
        try:
            return super().schedule(now, memory)
        finally:
            self.max_num_batched_tokens = ceiling


def run_splitfuse(workload: Workload, models: LWM7BA800, dataset: str, check: bool = False
                  ) -> list[RequestRecord]:
    fam = dataset_family(dataset)
    cost = models.sp1_tp8.as_linear_cost_model()
    dep = _deployment(cost, KV_CAPACITY[8])
    policy = SplitFusePolicy(MAX_NUM_SEQS[fam], SPLITFUSE_CHUNK[fam])
    return simulate(workload, dep, policy, check_invariants=check).records


def run_vllm(workload: Workload, models: LWM7BA800, dataset: str, check: bool = False) -> list[RequestRecord]:
    fam = dataset_family(dataset)
    dep = _deployment(models.sp1_tp8.as_linear_cost_model(), KV_CAPACITY[8])
    return simulate(workload, dep, "vllm", max_num_seqs=MAX_NUM_SEQS[fam],
                    max_num_batched_tokens=VLLM_BATCHED_TOKENS, check_invariants=check).records


@dataclass(frozen=True)
class DisaggModels:
    prefill: LinearCostModel
    decode: LinearCostModel

    @classmethod
    def of(cls, models: LWM7BA800) -> DisaggModels:
        p = models.tp4_instance()
        d = models.four_gpu_decode()
        a = d.decode[0]
        # the KV install step costs one decode iteration's fixed part; its tokens are not recomputed
        return cls(p.as_linear_cost_model(), LinearCostModel((a, 0.0, 0.0), d.decode, name="disagg-decode"))


def run_disagg(workload: Workload, models: LWM7BA800, dataset: str, check: bool = False
               ) -> list[RequestRecord]:
    m = DisaggModels.of(models)
    # stage 1: prefill + first token on one TP4 instance
    first = Workload(workload.name,
                     tuple(RequestSpec(r.arrival_time, r.prompt_len, 1) for r in workload.requests))
    dep_p = _deployment(m.prefill, KV_CAPACITY[4])
    pre = simulate(first, dep_p, "fcfs", max_num_seqs=MAX_NUM_SEQS[dataset_family(dataset)],
                   max_num_batched_tokens=DISAGG_PREFILL_TOKENS, check_invariants=check).records
    # stage 2: KV transfer, then the remaining output_len - 1 tokens on the decode group
    per_token = kv_seconds_per_token(DISAGG_RANKS)
    todo = [i for i, r in enumerate(workload.requests) if r.output_len > 1 and pre[i].ok]
    second = Workload(workload.name, tuple(
        RequestSpec(pre[i].finish_time + workload.requests[i].prompt_len * per_token,  # type: ignore[operator]
                    workload.requests[i].prompt_len, workload.requests[i].output_len - 1) for i in todo))
    dep_d = _deployment(m.decode, KV_CAPACITY[4])
    dec_policy_budget = max((r.prompt_len for r in second.requests), default=1) + DISAGG_MAX_BATCH
    dec = simulate(second, dep_d, "fcfs", max_num_seqs=DISAGG_MAX_BATCH,
                   max_num_batched_tokens=dec_policy_budget, check_invariants=check).records if todo else []
    out = []
    for i, r in enumerate(workload.requests):
        rec = RequestRecord(r.prompt_len, r.output_len, r.arrival_time, pre[i].first_token_time,
                            pre[i].finish_time, pre[i].num_output_tokens, pre[i].error)
        out.append(rec)
    for j, i in enumerate(todo):
        d = dec[j]
        out[i].finish_time = d.finish_time if d.ok else None
        out[i].num_output_tokens = 1 + d.num_output_tokens
        out[i].error = out[i].error or d.error
    return out

