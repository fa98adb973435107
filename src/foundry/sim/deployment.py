"""A deployment: a cost model plus the KV pools and host link it runs with, from one `--cost` spec.

Specs:
- a published model, e.g. ``opt-13b-a100`` (``published.TABLE``): pools sized from the GPU's memory;
- ``roofline:GPU:MODEL[:tpN]``, e.g. ``roofline:h100:llama-3-8b``;
- ``fitted:FILE``: a cost-model JSON, step samples, or a `foundry serve profile` file; the pools come
  from the file's `meta` when it records them (our engine's block counts), else must be given.

Device blocks default to what is left of 90% of the GPUs' memory after the weights; the host pool to
FastServe's 56 GB swap space (serving reference §2.6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from foundry.sim.cost_models import CostModel, FitReport, RooflineCostModel, load_fitted, published_cost_model
from foundry.sim.cost_models.published import TABLE
from foundry.sim.hardware import GB, gpu_spec, model_spec, num_kv_blocks

DEFAULT_HOST_SWAP_BYTES = 56 * GB


@dataclass
class Deployment:
    cost_model: CostModel
    block_size: int
    num_device_blocks: int
    num_host_blocks: int
    kv_bytes_per_token: float
    link_bandwidth: float  # bytes/s; inf = free swaps
    fit_report: FitReport | None = None
    info: dict[str, object] = field(default_factory=dict)

    @property
    def kv_bytes_per_block(self) -> float:
        return self.kv_bytes_per_token * self.block_size


def _parse_tp(text: str) -> int:
    if not text.startswith("tp") or not text[2:].isdigit() or int(text[2:]) < 1:
        raise ValueError(f"cost: expected a tensor-parallel suffix like 'tp2', got {text!r}")
    return int(text[2:])


def resolve_deployment(spec: str, *, block_size: int = 16, num_device_blocks: int | None = None,
                       num_host_blocks: int | None = None, link_bandwidth: float | None = None,
                       memory_utilization: float = 0.9) -> Deployment:
    """Parse a `--cost` spec; explicit pool sizes and link bandwidth override the derived ones."""
    if block_size < 1:
        raise ValueError(f"block_size: must be >= 1, got {block_size}")
    report: FitReport | None = None
    if spec.startswith("fitted:"):
        model, report = load_fitted(spec.removeprefix("fitted:"))
        meta = model.meta
        kv_tok = float(meta.get("kv_bytes_per_token", 0.0))
        block_size = int(meta.get("block_size", block_size))
        dev = num_device_blocks if num_device_blocks is not None else meta.get("num_device_blocks")
        host = num_host_blocks if num_host_blocks is not None else int(meta.get("num_host_blocks", 0))
        if dev is None:
            raise ValueError(f"num_device_blocks: {spec!r} does not record the size of the engine's KV pool; "
                             "give it with --num-device-blocks N (and --num-host-blocks N for a swap pool)")
        link = link_bandwidth if link_bandwidth is not None else math.inf
        return Deployment(model, block_size, int(dev), host, kv_tok, link, report, {"cost": spec})
    if spec.startswith("roofline:"):
        parts = spec.split(":")
        if len(parts) not in (3, 4):
            raise ValueError(f"cost: expected roofline:GPU:MODEL[:tpN], got {spec!r}")
        gpu, mspec = gpu_spec(parts[1]), model_spec(parts[2])
        tp = _parse_tp(parts[3]) if len(parts) == 4 else 1
        cost: CostModel = RooflineCostModel(gpu, mspec, tp)
    elif spec in TABLE:
        p = TABLE[spec]
        gpu, mspec, tp = gpu_spec(p.gpu), model_spec(p.model), p.tp
        cost = published_cost_model(spec)
    else:
        raise ValueError(f"cost: expected one of {', '.join(sorted(TABLE))}, roofline:GPU:MODEL or "
                         f"fitted:FILE; got {spec!r}")
    kv_tok = mspec.kv_bytes_per_token
    dev = num_device_blocks if num_device_blocks is not None else num_kv_blocks(
        gpu, mspec, block_size, tp=tp, memory_utilization=memory_utilization)
    host = num_host_blocks if num_host_blocks is not None else int(
        DEFAULT_HOST_SWAP_BYTES // (block_size * kv_tok))
    link = link_bandwidth if link_bandwidth is not None else gpu.link_bandwidth * tp
    info = {"cost": spec, "gpu": gpu.name, "model": mspec.name, "tp": tp}
    return Deployment(cost, block_size, dev, host, kv_tok, link, report, info)
