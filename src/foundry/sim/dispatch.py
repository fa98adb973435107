"""Dispatchers: which instance (engine core) of a cluster a new request goes to. Torch-free.

A dispatcher is the global policy above N `EngineCore`s, as a policy is the local one inside each: a
plain object that reads the cores' state and answers with an index; it never mutates a core. With one
instance every dispatcher answers 0, so a one-instance cluster schedules exactly as a lone core.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from foundry.serve.core import EngineCore
from foundry.serve.sequence import Sequence


class Dispatcher(ABC):
    name: str = "base"

    @abstractmethod
    def choose(self, seq: Sequence, cores: list[EngineCore]) -> int:
        """The index of the instance that takes `seq`."""


class RoundRobin(Dispatcher):
    """Instances in turn, whatever their load."""

    name = "round-robin"

    def __init__(self) -> None:
        self.next = 0

    def choose(self, seq: Sequence, cores: list[EngineCore]) -> int:
        i = self.next % len(cores)
        self.next = i + 1
        return i


class LeastLoaded(Dispatcher):
    """The instance with the fewest unfinished requests (the lowest index on a tie)."""

    name = "least-loaded"

    def choose(self, seq: Sequence, cores: list[EngineCore]) -> int:
        return min(range(len(cores)), key=lambda i: len(cores[i].requests))


DISPATCHERS: dict[str, type[Dispatcher]] = {"round-robin": RoundRobin, "least-loaded": LeastLoaded}


def build_dispatcher(name: str) -> Dispatcher:
    if name not in DISPATCHERS:
        raise ValueError(f"dispatch: unknown {name!r}; known: {', '.join(DISPATCHERS)}")
    return DISPATCHERS[name]()
