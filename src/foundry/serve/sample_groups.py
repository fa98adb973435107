"""`n` samples of one prompt: who waits for whose prompt, and which samples belong to which request.

A request with `SamplingParams(n=k)` becomes k sample requests `{id}-0 … {id}-{k-1}`
(`sample_request_ids`). Sample 0, the *leader*, is the only one the policy sees at first: it computes
the prompt. The others wait here, outside the policy, until the step in which the leader's prompt is
complete; then they take their first token from the same logits and fork the leader's KV blocks (the
block manager's refcounted `fork`: each of them copies the partly filled last block when it first
writes into it, the leader fills it in place). From then on every sample is a plain request to the
policy and the block manager.

Torch-free bookkeeping only: the engine does the forking, this records who is waiting and for whom.
"""

from __future__ import annotations

from typing import Generic, TypeVar

R = TypeVar("R")  # the engine's per-request record


class SampleGroups(Generic[R]):
    def __init__(self) -> None:
        self.waiting: dict[str, dict[str, R]] = {}  # leader id -> {sample id: record}, in sample order
        self._samples: dict[str, list[str]] = {}  # request (parent) id -> its live sample ids
        self._parent: dict[str, str] = {}  # sample id -> request id

    @property
    def num_waiting(self) -> int:
        return sum(len(w) for w in self.waiting.values())

    def add(self, request_id: str, samples: dict[str, R]) -> None:
        """Request `request_id`'s samples in order; all but the first (the leader) wait for its prompt."""
        ids = list(samples)
        self._samples[request_id] = ids
        for sid in ids:
            self._parent[sid] = request_id
        if len(ids) > 1:
            self.waiting[ids[0]] = {sid: samples[sid] for sid in ids[1:]}

    def is_taken(self, request_id: str) -> bool:
        """Whether the id names a request with samples, or one of its live samples."""
        return request_id in self._samples or request_id in self._parent

    def sample_ids(self, request_id: str) -> list[str]:
        """The live samples of request `request_id` (empty if it has none)."""
        return list(self._samples.get(request_id, ()))

    def pop_waiting(self, leader_id: str) -> list[R]:
        """The samples waiting for `leader_id`'s prompt, no longer waiting."""
        return list(self.waiting.pop(leader_id, {}).values())

    def take_waiting(self, sample_id: str) -> R | None:
        """Remove one waiting sample from whichever leader it waits for."""
        for leader_id, samples in self.waiting.items():
            if sample_id in samples:
                record = samples.pop(sample_id)
                if not samples:
                    del self.waiting[leader_id]
                return record
        return None

    def promote(self, leader_id: str) -> R | None:
        """The leader left before its prompt was computed: the next waiting sample leads the rest."""
        samples = self.waiting.pop(leader_id, None)
        if not samples:
            return None
        new_id, record = next(iter(samples.items()))
        del samples[new_id]
        if samples:
            self.waiting[new_id] = samples
        return record

    def forget(self, sample_id: str) -> None:
        """A sample finished, was aborted or left the engine."""
        request_id = self._parent.pop(sample_id, None)
        if request_id is None:
            return
        live = self._samples[request_id]
        live.remove(sample_id)
        if not live:
            del self._samples[request_id]
