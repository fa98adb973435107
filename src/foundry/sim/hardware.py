"""Hardware and model specs: the numbers a roofline cost model and the KV pools are sized from.

GPU numbers are the vendors' published peaks (dense FP16/BF16 tensor FLOP/s, HBM bandwidth, memory,
host link): NVIDIA A100 datasheet (SXM 80 GB: 312 TFLOP/s, 2,039 GB/s; 40 GB: 1,555 GB/s), H100 SXM
datasheet (989 TFLOP/s dense, 3.35 TB/s), H200 datasheet (989 TFLOP/s, 4.8 TB/s, 141 GB), A10G
(125 TFLOP/s, 600 GB/s, 24 GB). H800 SXM (989 TFLOP/s, 3.35 TB/s, 80 GB) and H20 (≈148 TFLOP/s dense
BF16, 4.0 TB/s, 96 GB) as StreamRL uses them (RL reference `rl.md` §2.1, from the datasheets).
Host links are nominal PCIe x16 rates (4.0: 32 GB/s, 5.0: 64 GB/s).
Model shapes are those of the public configs (OPT: Zhang et al. 2022; Llama 2 / Llama 3 model cards;
Qwen2.5 7B/32B/72B: the models' config.json and cards, 7.61B/32.5B/72.7B parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9


@dataclass(frozen=True)
class GPUSpec:
    name: str
    peak_flops: float  # dense FP16/BF16 tensor FLOP/s
    mem_bandwidth: float  # bytes/s
    mem_bytes: float  # device memory
    link_bandwidth: float  # host <-> device bytes/s (swap traffic)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    num_params: float
    dtype_bytes: int = 2

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of every layer for one token."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes

    @property
    def weight_bytes(self) -> float:
        return self.num_params * self.dtype_bytes


GPUS: dict[str, GPUSpec] = {
    "a100": GPUSpec("a100-80g", 312e12, 2039 * GB, 80 * GB, 32 * GB),
    "a100-80g": GPUSpec("a100-80g", 312e12, 2039 * GB, 80 * GB, 32 * GB),
    "a100-40g": GPUSpec("a100-40g", 312e12, 1555 * GB, 40 * GB, 32 * GB),
    "h100": GPUSpec("h100-sxm", 989e12, 3350 * GB, 80 * GB, 64 * GB),
    "h200": GPUSpec("h200", 989e12, 4800 * GB, 141 * GB, 64 * GB),
    "a10g": GPUSpec("a10g", 125e12, 600 * GB, 24 * GB, 32 * GB),
    "h800": GPUSpec("h800-sxm", 989e12, 3350 * GB, 80 * GB, 64 * GB),
    "h20": GPUSpec("h20", 148e12, 4000 * GB, 96 * GB, 64 * GB),
}

MODELS: dict[str, ModelSpec] = {
    "opt-13b": ModelSpec("opt-13b", 40, 5120, 40, 40, 128, 12.85e9),
    "opt-66b": ModelSpec("opt-66b", 64, 9216, 72, 72, 128, 65.7e9),
    "llama-2-7b": ModelSpec("llama-2-7b", 32, 4096, 32, 32, 128, 6.74e9),
    "llama-2-13b": ModelSpec("llama-2-13b", 40, 5120, 40, 40, 128, 13.0e9),
    "llama-3-8b": ModelSpec("llama-3-8b", 32, 4096, 32, 8, 128, 8.03e9),
    "qwen2.5-7b": ModelSpec("qwen2.5-7b", 28, 3584, 28, 4, 128, 7.61e9),
    "qwen2.5-32b": ModelSpec("qwen2.5-32b", 64, 5120, 40, 8, 128, 32.5e9),
    "qwen2.5-72b": ModelSpec("qwen2.5-72b", 80, 8192, 64, 8, 128, 72.7e9),
}


def gpu_spec(name: str) -> GPUSpec:
    if name.lower() not in GPUS:
        raise ValueError(f"gpu: unknown {name!r}; known: {', '.join(sorted(GPUS))}")
    return GPUS[name.lower()]


def model_spec(name: str) -> ModelSpec:
    if name.lower() not in MODELS:
        raise ValueError(f"model: unknown {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name.lower()]


def num_kv_blocks(gpu: GPUSpec, model: ModelSpec, block_size: int, *, tp: int = 1,
                  memory_utilization: float = 0.9) -> int:
    """Device KV blocks left after the weights in `memory_utilization` of `tp` GPUs' memory."""
    free = tp * gpu.mem_bytes * memory_utilization - model.weight_bytes
    if free <= 0:
        raise ValueError(f"model: {model.name} ({model.weight_bytes / GB:.1f} GB of weights) does not fit "
                         f"{tp} x {gpu.name} at memory utilization {memory_utilization}")
    return int(free // (block_size * model.kv_bytes_per_token))
