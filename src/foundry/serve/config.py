"""EngineConfig: every engine knob, validated once at construction and never mutated."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DTYPES = ("float32", "float16", "bfloat16")


class EngineConfig(BaseModel):
    """Engine limits and choices. Knob names follow vLLM's where one exists."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field("foundry-tiny", description="'foundry-tiny' or a local Hugging Face checkpoint dir")
    policy: Literal["fcfs", "vllm"] = Field("vllm", description="scheduling policy")
    preemption_mode: Literal["recompute", "swap"] = Field(
        "recompute", description="vllm policy: drop a preempted request's KV, or swap it to the host pool"
    )
    block_size: int = Field(16, ge=1, le=1024, description="tokens per KV block")
    num_device_blocks: int | None = Field(
        None, ge=1, description="device KV blocks; None derives them from kv_cache_memory_mb"
    )
    num_host_blocks: int = Field(512, ge=0, description="host (swap) KV blocks")
    kv_cache_memory_mb: float = Field(
        64.0, gt=0, description="device KV budget (MiB) when num_device_blocks is None"
    )
    max_num_seqs: int = Field(16, ge=1, description="most requests in one batch")
    max_num_batched_tokens: int = Field(512, ge=1, description="most tokens computed in one step")
    max_model_len: int | None = Field(None, ge=2, description="context limit; None uses the model's")
    seed: int = Field(0, description="seed for foundry-tiny's weights and for unseeded sampling")
    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when present)")
    dtype: str = Field("float32", description="one of float32, float16, bfloat16")

    @field_validator("dtype")
    @classmethod
    def _check_dtype(cls, v: str) -> str:
        if v not in DTYPES:
            raise ValueError(f"dtype: must be one of {DTYPES}, got {v!r}")
        return v

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if not (v in ("cpu", "cuda", "auto") or (v.startswith("cuda:") and v[5:].isdigit())):
            raise ValueError(f"device: must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {v!r}")
        return v
