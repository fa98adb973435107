"""EngineConfig: every engine knob in nested sections, validated once at construction, never mutated.

    EngineConfig            model, max_model_len, seed, logprobs_mode
      .scheduler            policy, max_num_seqs, max_num_batched_tokens, profile
        .vllm, .mlfq, ...   one section per option group of the policy registry (`POLICIES`)
      .cache                block_size, num_device_blocks, num_host_blocks, kv_cache_memory_mb
      .device               device, dtype

Every leaf also has a flat name (`foundry.config_cli`): its own name, or for a policy's option group
its prefix and name (`mlfq_base_quantum`). `EngineConfig(max_num_seqs=8, mlfq_memory_mode="recompute")`
is `EngineConfig(scheduler={"max_num_seqs": 8, "mlfq": {"memory_mode": "recompute"}})`, and the
command-line options are the flat names. Knob names follow vLLM's where one exists.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from foundry.config_cli import replace, with_flat_names
from foundry.serve.policies import POLICIES
from foundry.serve.speculative import SpeculativeConfig

DTYPES = ("float32", "float16", "bfloat16")
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CacheConfig(BaseModel):
    """The paged KV cache."""

    model_config = _FROZEN
    block_size: int = Field(16, ge=1, le=1024, description="tokens per KV block")
    num_device_blocks: int | None = Field(
        None, ge=1, description="device KV blocks (unset: as many as kv_cache_memory_mb holds)"
    )
    num_host_blocks: int = Field(512, ge=0, description="host (swap) KV blocks")
    kv_cache_memory_mb: float = Field(
        64.0, gt=0, description="device KV budget in MiB, when num_device_blocks is unset"
    )
    enable_prefix_caching: bool = Field(
        False, description="reuse the KV of full blocks of earlier requests' identical prefixes"
    )
    kv_window_tokens: int | None = Field(
        None, ge=1, description="StreamingLLM-style KV eviction: keep the KV of the sink tokens and of "
        "this many recent tokens, free the blocks between (unset: keep all)"
    )
    kv_sink_tokens: int = Field(4, ge=1, description="with kv_window_tokens: the first tokens always kept "
                                "(rounded up to whole blocks)")

    @model_validator(mode="after")
    def _window_alone(self) -> CacheConfig:
        if self.kv_window_tokens is not None and self.enable_prefix_caching:
            raise ValueError("kv_window_tokens: not with enable_prefix_caching (a cached block must hold "
                             "every token before it)")
        return self


class DeviceConfig(BaseModel):
    """Where the model runs, and in which precision."""

    model_config = _FROZEN
    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when present)")
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="weights and KV dtype")

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if not (v in ("cpu", "cuda", "auto") or (v.startswith("cuda:") and v[5:].isdigit())):
            raise ValueError(f"device: must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {v!r}")
        return v


class _SchedulerBase(BaseModel):
    model_config = _FROZEN
    flat_prefix: ClassVar[str] = ""

    policy: Literal[tuple(POLICIES)] = Field(  # type: ignore[valid-type]
        "vllm", description="scheduling policy (srpt is an oracle: it reads max_tokens as the output length)"
    )
    max_num_seqs: int = Field(16, ge=1, description="most requests in one batch")
    # vLLM's default for online serving with chunked prefill
    max_num_batched_tokens: int = Field(2048, ge=1, description="most tokens computed in one step")
    profile: str | None = Field(
        None, description="latency profile JSON from `foundry serve profile` (sj-mlfq needs one)"
    )

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        return with_flat_names(cls, data)
    def with_policy(self, policy: str) -> SchedulerConfig:
        """This config with another policy (validated)."""
        return replace(self, policy=policy)


# One section per option group of the registry, so that registering a policy is the only edit.
_GROUPS = {name: model for spec in POLICIES.values() if spec.options for name, model in [spec.options]}
SchedulerConfig = create_model(
    "SchedulerConfig", __base__=_SchedulerBase, __doc__="The policy and its limits; a section per policy "
    "option group.", **{name: (model, Field(default_factory=model)) for name, model in _GROUPS.items()},
)


class EngineConfig(BaseModel):
    """Engine limits and choices, in sections; flat names are accepted as keywords too."""

    model_config = _FROZEN

    model: str = Field("foundry-tiny", description="foundry-tiny (random weights), foundry-small, "
                       "foundry-small-draft (trained), or a local Hugging Face checkpoint dir")
    max_model_len: int | None = Field(None, ge=2, description="context limit (unset: the model's)")
    seed: int = Field(0, description="seed for foundry-tiny's weights and for unseeded sampling")
    quantization: Literal["int8", "int4"] | None = Field(
        None, description="weight-only quantisation of the decoder's linear layers at load time: int8 per "
        "channel, or int4 in groups of 32 (unset: none)"
    )
    logprobs_mode: Literal["raw", "processed"] = Field(
        "raw", description="logprobs reported: 'raw' = log_softmax(logits); 'processed' = of the "
        "distribution each token was sampled from (logits / temperature, after top-k/top-p)"
    )
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)  # type: ignore[valid-type]
    cache: CacheConfig = Field(default_factory=CacheConfig)
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    speculative: SpeculativeConfig = Field(default_factory=SpeculativeConfig)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        return with_flat_names(cls, data)

    @model_validator(mode="after")
    def _window_needs_a_growing_policy(self) -> EngineConfig:
        if self.cache.kv_window_tokens is not None and self.scheduler.policy == "fcfs":
            raise ValueError("kv_window_tokens: not with policy fcfs (it reserves a request's whole length "
                             "up front, which a window never holds)")
        return self
