"""Scheduling policies: plain objects over request state, shared by the engine and the simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from foundry.serve.policies.base import MemoryBudget, Policy, ScheduledRequest, SchedulerOutput
from foundry.serve.policies.fcfs import FCFSPolicy
from foundry.serve.policies.mlfq import MLFQPolicy, skip_join_level
from foundry.serve.policies.srpt import SRPTOraclePolicy
from foundry.serve.policies.vllm import VLLMPolicy

if TYPE_CHECKING:
    from foundry.serve.config import EngineConfig
    from foundry.serve.profile import Profile

POLICIES: dict[str, type[Policy]] = {"fcfs": FCFSPolicy, "vllm": VLLMPolicy, "mlfq": MLFQPolicy,
                                     "sj-mlfq": MLFQPolicy, "srpt": SRPTOraclePolicy}


def needs_profile(config: EngineConfig) -> bool:
    """Whether `config`'s policy reads a measured latency profile (skip-join, or a scaled quantum)."""
    return config.policy == "sj-mlfq" or (config.policy == "mlfq" and config.mlfq_base_quantum_s is None)


def build_policy(config: EngineConfig, profile: Profile | None = None) -> Policy:
    """The policy `config` names, given only the numbers it needs. `profile` overrides `config.profile`."""
    if config.policy == "fcfs":
        return FCFSPolicy(config.max_num_seqs, config.max_num_batched_tokens)
    if config.policy == "vllm":
        return VLLMPolicy(config.max_num_seqs, config.max_num_batched_tokens, config.preemption_mode)
    memory = {"memory_mode": config.mlfq_memory_mode, "min_free_blocks": config.mlfq_min_free_blocks,
              "defer_host_free_ratio": config.mlfq_defer_host_free_ratio}
    if config.policy == "srpt":
        return SRPTOraclePolicy(config.max_num_seqs, config.max_num_batched_tokens, **memory)
    if config.policy not in ("mlfq", "sj-mlfq"):
        raise ValueError(f"policy: unknown {config.policy!r}; known: {sorted(POLICIES)}")
    if profile is None and config.profile is not None:
        from foundry.serve.profile import Profile

        profile = Profile.load(config.profile)
    if profile is None and needs_profile(config):
        raise ValueError(f"profile: policy {config.policy!r} with these settings needs a measured profile "
                         "(write one with `foundry serve profile --output FILE`, pass --profile FILE)")
    quantum = config.mlfq_base_quantum_s
    if quantum is None:
        from foundry.serve.profile import scaled_base_quantum

        quantum = scaled_base_quantum(profile)
    skip_join = config.policy == "sj-mlfq"
    return MLFQPolicy(
        config.max_num_seqs, config.max_num_batched_tokens, base_quantum=quantum, skip_join=skip_join,
        prefill_time=profile.prefill_time if skip_join else None,
        starvation_interval=config.mlfq_starvation_interval,
        starvation_threshold_s=config.mlfq_starvation_threshold_s,
        starvation_hold=config.mlfq_starvation_hold, **memory,
    )


__all__ = ["POLICIES", "FCFSPolicy", "MLFQPolicy", "MemoryBudget", "Policy", "SRPTOraclePolicy",
           "ScheduledRequest", "SchedulerOutput", "VLLMPolicy", "build_policy", "needs_profile",
           "skip_join_level"]
