"""Scheduling policies: plain objects over request state, shared by the engine and the simulator."""

from __future__ import annotations

from foundry.serve.policies.base import MemoryBudget, Policy, ScheduledRequest, SchedulerOutput
from foundry.serve.policies.fcfs import FCFSPolicy
from foundry.serve.policies.vllm import VLLMPolicy

POLICIES: dict[str, type[Policy]] = {"fcfs": FCFSPolicy, "vllm": VLLMPolicy}

__all__ = ["POLICIES", "FCFSPolicy", "MemoryBudget", "Policy", "ScheduledRequest", "SchedulerOutput",
           "VLLMPolicy"]
