"""Waiting for a state, never for a duration: the tests' one copy of their polling helpers, and a gate
that lets a test decide when an engine may take its next step.

A timeout here only bounds a test that is already broken; no verdict depends on how fast the machine
is. A request "long enough by construction" is one whose ``max_tokens`` exceeds the steps the test
permits, not one that is merely expected to outlive some wall time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from foundry.serve.core import StepObserver

PATIENCE_S = 60.0  # how long a broken test may hang before it fails


def wait_until(cond: Callable[[], bool], timeout: float = PATIENCE_S) -> bool:
    """Poll ``cond`` until it holds; False if it never did within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


async def until(cond: Callable[[], bool], timeout: float = PATIENCE_S) -> None:
    """``wait_until`` for coroutines: yields to the event loop between polls; asserts on timeout."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


class StepGate(StepObserver):
    """Holds an engine's steps until the test grants them: each step takes one permit.

    An observer of the engine's core: it waits at ``step_starting`` (before the step reads its clock)
    and counts a step at ``step_ended`` (when its outputs are made). ``allow(n)`` grants n steps,
    ``open()`` lifts the gate. Leaving the ``with`` block opens it and detaches it, so a failing test
    never leaves an engine thread blocked.
    """

    def __init__(self, engine: Any, permits: int = 0) -> None:
        self._engine = engine
        self._cond = threading.Condition()
        self._permits: int | None = permits  # None: open
        self._attached: Any = None
        self.steps = 0  # steps completed through the gate
        self.waiting = False  # a step is held at the gate now

    def __enter__(self) -> StepGate:
        self._attached = self._engine.core.observe(self)
        self._attached.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.open()
        self._attached.__exit__(None, None, None)

    def step_starting(self) -> None:
        with self._cond:
            self.waiting = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._permits is None or self._permits > 0)
            self.waiting = False
            if self._permits is not None:
                self._permits -= 1

    def step_ended(self, *_: Any) -> None:
        with self._cond:
            self.steps += 1
            self._cond.notify_all()

    def allow(self, n: int = 1) -> None:
        with self._cond:
            if self._permits is not None:
                self._permits += n
            self._cond.notify_all()

    def open(self) -> None:
        with self._cond:
            self._permits = None
            self._cond.notify_all()

    def wait_for(self, cond: Callable[[StepGate], bool], timeout: float = PATIENCE_S) -> bool:
        """Block until ``cond(self)`` holds (e.g. ``lambda g: g.steps >= 3``, ``lambda g: g.waiting``)."""
        with self._cond:
            return self._cond.wait_for(lambda: cond(self), timeout)

    def run(self, n: int = 1, timeout: float = PATIENCE_S) -> None:
        """Grant n steps and wait until they are done."""
        target = self.steps + n
        self.allow(n)
        assert self.wait_for(lambda g: g.steps >= target, timeout), f"{n} step(s) did not run"

    async def run_async(self, n: int = 1) -> None:
        """``run`` for coroutines (the event loop stays free while the steps run)."""
        await asyncio.to_thread(self.run, n)

    async def held_async(self) -> None:
        """Wait until the engine thread is held at the gate, between two steps."""
        held = await asyncio.to_thread(self.wait_for, lambda g: g.waiting)
        assert held, "the engine never reached the gate"


@contextmanager
def watch_aborts(async_engine: Any) -> Iterator[threading.Event]:
    """An event set when anything asks ``async_engine`` to abort a request (an abort observer)."""
    event = threading.Event()
    with async_engine.observe_aborts(lambda request_id: event.set()):
        yield event
