"""The systems compared at paper scale, by name: each turns a workload into per-request records.

| name | what runs | on 8 A800-like GPUs |
|---|---|---|
| loongserve | `LoongServeScheduler` in the elastic cluster | 4 TP2 instances, 210k KV tokens each |
| static-tp2-sp4 (static-sp) | `StaticSPScheduler`, groups of 4 | the 4 instances as one SP4 group |
| static-tp2x4 | `StaticSPScheduler`, groups of 1 | 4 independent TP2 replicas |
| static-tp8 | `StaticSPScheduler`, groups of 1 | one TP8 instance, 900k KV tokens |
| splitfuse | the engine's core, chunked prefill (`baselines.py`) | one TP8 instance |
| vllm | the engine's core, `vllm` policy | one TP8 instance |
| disagg | two engine cores, prefill then decode | TP4 prefill + 4-GPU decode |
"""

from __future__ import annotations

from collections.abc import Callable

from foundry.serve.bench.report import RequestRecord
from foundry.serve.bench.workloads import Workload
from foundry.sim.elastic.baselines import MAX_NUM_SEQS, dataset_family, run_disagg, run_splitfuse, run_vllm
from foundry.sim.elastic.calibration import KV_CAPACITY, LWM7BA800, esp_cost_model
from foundry.sim.elastic.cluster import ClusterResult, ElasticCluster

ELASTIC = {  # name -> (instance TP, number of instances, static SP group size or None for LoongServe)
    "loongserve": (2, 4, None),
    "static-tp2-sp4": (2, 4, 4),
    "static-tp2x4": (2, 4, 1),
    "static-tp8": (8, 1, 1),
}
ALIASES = {"static-sp": "static-tp2-sp4"}
BASELINES: dict[str, Callable[..., list[RequestRecord]]] = {"splitfuse": run_splitfuse, "vllm": run_vllm,
                                                           "disagg": run_disagg}
SYSTEMS = (*ELASTIC, *BASELINES)


def canonical(system: str) -> str:
    name = ALIASES.get(system, system)
    if name not in SYSTEMS:
        raise ValueError(f"system: expected one of {', '.join((*SYSTEMS, *ALIASES))}, got {system!r}")
    return name


# LoongServe's AE knobs per dataset (§3.4-3.5): out-of-order admissions, running_max_req_size
MAX_NUM_OOE = {"sharegpt": 1, "leval": 8, "lveval": 8, "mixed": 4, "zipf": 64}


def elastic_cluster(system: str, models: LWM7BA800, dataset: str, *, check: bool = False,
                    validate: bool = False) -> ElasticCluster:
    """The elastic cluster and scheduler of `system` (one of ELASTIC) for `dataset`'s settings."""
    from foundry.serve.elastic.scheduler import LoongServeConfig, LoongServeScheduler
    from foundry.serve.elastic.static_sp import StaticSPScheduler

    tp, num, group = ELASTIC[canonical(system)]
    fam = dataset_family(dataset)
    cost = esp_cost_model(models, tp)
    if group is None:
        scheduler = LoongServeScheduler(cost, LoongServeConfig(max_num_ooe=MAX_NUM_OOE[fam],
                                                               max_num_seqs=MAX_NUM_SEQS[fam]))
        limit = KV_CAPACITY[tp] * num
    else:
        scheduler = StaticSPScheduler(cost, group, max_num_seqs=MAX_NUM_SEQS[fam])
        limit = KV_CAPACITY[tp] * group
    return ElasticCluster(scheduler, cost, [KV_CAPACITY[tp]] * num, max_request_tokens=limit, check=check,
                          validate=validate)


def run_elastic(system: str, workload: Workload, models: LWM7BA800, dataset: str, *,
                check: bool = False, validate: bool = False) -> ClusterResult:
    return elastic_cluster(system, models, dataset, check=check, validate=validate).run(workload)


def run_system(system: str, workload: Workload, dataset: str, models: LWM7BA800, *,
               check: bool = False) -> list[RequestRecord]:
    """Per-request records of `workload` served by `system`."""
    name = canonical(system)
    if name in ELASTIC:
        return run_elastic(name, workload, models, dataset, check=check).records
    return BASELINES[name](workload, models, dataset, check=check)
