"""Scheduling policies: plain objects over request state, shared by the engine and the simulator.

`POLICIES` is the registry: a name, how to build the policy from a `SchedulerConfig`, and its option
group (a pydantic model that `SchedulerConfig` gains as a section). Adding a policy is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from foundry.serve.policies.base import MemoryBudget, Policy, ScheduledRequest, SchedulerOutput
from foundry.serve.policies.fcfs import FCFSPolicy
from foundry.serve.policies.mlfq import MLFQOptions, MLFQPolicy, skip_join_level
from foundry.serve.policies.srpt import SRPTOraclePolicy
from foundry.serve.policies.vllm import VLLMOptions, VLLMPolicy

if TYPE_CHECKING:
    from foundry.serve.config import SchedulerConfig
    from foundry.serve.profile import Profile


@dataclass(frozen=True)
class PolicySpec:
    """A registered policy: its builder, its option group (section name, model) and whether it reads a
    measured latency profile under a given config."""

    build: Callable[[SchedulerConfig, Profile | None], Policy]
    options: tuple[str, type[BaseModel]] | None = None
    needs_profile: Callable[[SchedulerConfig], bool] = lambda s: False


def _mlfq(s: SchedulerConfig, profile: Profile | None, *, skip_join: bool = False) -> Policy:
    o: MLFQOptions = s.mlfq  # type: ignore[attr-defined]
    quantum = o.base_quantum
    if quantum is None:
        from foundry.serve.profile import scaled_base_quantum

        quantum = scaled_base_quantum(profile)
    return MLFQPolicy(
        s.max_num_seqs, s.max_num_batched_tokens, base_quantum=quantum, skip_join=skip_join,
        prefill_time=profile.prefill_time if skip_join else None, starvation_interval=o.starvation_interval,
        starvation_threshold_s=o.starvation_threshold, starvation_hold=o.starvation_hold,
        memory_mode=o.memory_mode, min_free_blocks=o.min_free_blocks,
        defer_host_free_ratio=o.defer_host_free_ratio,
    )


def _srpt(s: SchedulerConfig, profile: Profile | None) -> Policy:
    o: MLFQOptions = s.mlfq  # type: ignore[attr-defined]
    return SRPTOraclePolicy(s.max_num_seqs, s.max_num_batched_tokens, memory_mode=o.memory_mode,
                            min_free_blocks=o.min_free_blocks, defer_host_free_ratio=o.defer_host_free_ratio)


POLICIES: dict[str, PolicySpec] = {
    "fcfs": PolicySpec(lambda s, _: FCFSPolicy(s.max_num_seqs, s.max_num_batched_tokens)),
    "vllm": PolicySpec(lambda s, _: VLLMPolicy(s.max_num_seqs, s.max_num_batched_tokens,
                                               s.vllm.preemption_mode),  # type: ignore[attr-defined]
                       ("vllm", VLLMOptions)),
    "mlfq": PolicySpec(_mlfq, ("mlfq", MLFQOptions),
                       lambda s: s.mlfq.base_quantum is None),  # type: ignore[attr-defined]
    "sj-mlfq": PolicySpec(lambda s, p: _mlfq(s, p, skip_join=True), ("mlfq", MLFQOptions), lambda s: True),
    "srpt": PolicySpec(_srpt, ("mlfq", MLFQOptions)),
}


def needs_profile(scheduler: SchedulerConfig) -> bool:
    """Whether the configured policy reads a measured latency profile (skip-join, or a scaled quantum)."""
    return POLICIES[scheduler.policy].needs_profile(scheduler)


def build_policy(scheduler: SchedulerConfig, profile: Profile | None = None) -> Policy:
    """The policy `scheduler` names. `profile` overrides `scheduler.profile` (a path)."""
    needed = needs_profile(scheduler)
    if profile is None and needed and scheduler.profile is not None:
        from foundry.serve.profile import Profile

        profile = Profile.load(scheduler.profile)
    if profile is None and needed:
        raise ValueError(f"profile: policy {scheduler.policy!r} with these settings needs a measured profile "
                         "(write one with `foundry serve profile --output FILE`, pass --profile FILE)")
    return POLICIES[scheduler.policy].build(scheduler, profile)


__all__ = ["POLICIES", "FCFSPolicy", "MLFQOptions", "MLFQPolicy", "MemoryBudget", "Policy", "PolicySpec",
           "SRPTOraclePolicy", "ScheduledRequest", "SchedulerOutput", "VLLMOptions", "VLLMPolicy",
           "build_policy", "needs_profile", "skip_join_level"]
