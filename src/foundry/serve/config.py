"""EngineConfig: every engine knob, validated once at construction and never mutated."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DTYPES = ("float32", "float16", "bfloat16")


class EngineConfig(BaseModel):
    """Engine limits and choices. Knob names follow vLLM's where one exists."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field("foundry-tiny", description="'foundry-tiny' or a local Hugging Face checkpoint dir")
    policy: Literal["fcfs", "vllm", "mlfq", "sj-mlfq", "srpt"] = Field(
        "vllm", description="scheduling policy (srpt is an oracle: it reads max_tokens as the output length)"
    )
    preemption_mode: Literal["recompute", "swap"] = Field(
        "recompute", description="vllm policy: drop a preempted request's KV, or swap it to the host pool"
    )
    # FastServe (mlfq, sj-mlfq, srpt); defaults are the paper's values (serving reference §2.2-2.3)
    profile: str | None = Field(
        None, description="latency profile JSON from `foundry serve profile` (sj-mlfq needs one)"
    )
    mlfq_base_quantum_s: float | None = Field(
        0.010, gt=0, description="base quantum q0 (s); None: the paper's 10 ms scaled to the profile"
    )
    mlfq_starvation_interval: int = Field(1000, ge=1, description="steps between starvation checks")
    mlfq_starvation_threshold_s: float = Field(
        3.0, ge=0, description="idle time (s) after which a job is promoted to level 0"
    )
    mlfq_starvation_hold: Literal["quantum", "finish", "off"] = Field(
        "quantum", description="how long a promoted starved job is kept from demotion ('off': paper)"
    )
    mlfq_defer_host_free_ratio: float = Field(
        0.1, ge=0, le=1, description="defer new prefills while free/total host blocks is below this"
    )
    mlfq_memory_mode: Literal["proactive-swap", "reactive-swap", "recompute"] = Field(
        "proactive-swap", description="how mlfq/sj-mlfq/srpt free device KV of preempted jobs"
    )
    mlfq_min_free_blocks: int = Field(
        0, ge=0, description="proactive-swap reserve: max(max_num_seqs, this) free device blocks"
    )
    logprobs_mode: Literal["raw", "processed"] = Field(
        "raw", description="logprobs reported: 'raw' = log_softmax(logits); 'processed' = of the "
        "distribution each token was sampled from (logits / temperature, after top-k/top-p)"
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
