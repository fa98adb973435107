"""Drive an ``LLMEngine`` from one background thread and expose its requests as asyncio streams.

The engine is not thread-safe, so only the engine thread ever touches it. Other threads (the server's
event loop) hand it work through small lock-guarded buffers: requests to add, ids to abort, and
functions to run on the engine (``call``, e.g. a weight update). The thread applies them between
steps, then runs ``engine.step()`` and pushes each ``RequestOutput`` to its request's asyncio queue
with ``loop.call_soon_threadsafe``. When nothing is left to run it sleeps on an event until new work
arrives.

Admission control: at most ``max_waiting`` requests may wait for admission (not yet handed to the engine,
plus the engine's own waiting queue as of its latest step); beyond that ``add_request`` raises
``QueueFullError`` (the server answers 429 with Retry-After).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from foundry.serve.sampling_params import sample_request_ids

logger = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The waiting queue is full; try again after ``retry_after`` seconds."""

    def __init__(self, max_waiting: int, retry_after: float) -> None:
        super().__init__(f"the waiting queue is full ({max_waiting} requests); retry later")
        self.max_waiting = max_waiting
        self.retry_after = retry_after


class EngineDeadError(RuntimeError):
    """The engine thread has stopped (shut down, or a step raised); no request can be served."""


@dataclass
class _PendingAdd:
    request_id: str
    prompt: Any  # str | list[int]
    params: Any  # SamplingParams
    loop: asyncio.AbstractEventLoop
    accepted: asyncio.Future
    streams: list[RequestStream]  # one per sample (``params.n``)


def _settle(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(result)
    else:
        fut.set_exception(error)


def _resolve(fut: asyncio.Future, error: BaseException | None) -> None:
    _settle(fut, None, error)


@dataclass
class RequestStream:
    """The outputs of one request as an async iterator; ends after the output with ``finished=True``.

    ``cancel()`` aborts the request in the engine (freeing its KV blocks) unless it already finished;
    call it in a ``finally`` wherever the consumer may stop early.
    """

    request_id: str
    _engine: AsyncEngine
    _queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    finished: bool = False

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self):
        if self.finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self.finished = True
            raise item
        if item.finished:
            self.finished = True
        return item

    def cancel(self) -> None:
        if not self.finished:
            self.finished = True
            self._engine.abort(self.request_id)


StepCallback = Callable[[list, Any], None]  # (outputs of the step, EngineStats after it)


class AsyncEngine:
    """Runs ``engine.step()`` in a background thread; thread-safe ``add_request`` / ``abort``."""

    def __init__(
        self,
        engine: Any,
        *,
        max_waiting: int = 256,
        retry_after_s: float = 1.0,
        on_step: StepCallback | None = None,
    ) -> None:
        if max_waiting < 1:
            raise ValueError(f"max_waiting: must be >= 1, got {max_waiting}")
        self.engine = engine
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self._on_step = on_step
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pending: dict[str, _PendingAdd] = {}
        self._aborts: set[str] = set()
        self._abort_observers: tuple[Callable[[str], None], ...] = ()
        self._calls: list[tuple[Callable[[Any], Any], asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._streams: dict[str, tuple[asyncio.AbstractEventLoop, RequestStream]] = {}
        self._stats = engine.stats()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("AsyncEngine already started")
        self._thread = threading.Thread(target=self._run, name="foundry-engine", daemon=True)
        self._thread.start()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the engine thread after its current step; fail every open request with EngineDeadError."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def stats(self) -> Any:
        """The engine's ``EngineStats`` as of its latest step (a snapshot; safe from any thread)."""
        return self._stats

    def num_waiting(self) -> int:
        with self._lock:
            return len(self._pending) + self._stats.num_waiting

    # --- requests ------------------------------------------------------------------------------------

    async def add_request(self, request_id: str, prompt: Any, params: Any) -> RequestStream:
        """Queue a request; returns its stream once the engine has accepted it.

        Raises ``QueueFullError`` when the waiting queue is full, ``ValueError`` (from the engine, naming
        the field) when the engine rejects the request, ``EngineDeadError`` when the engine has stopped.
        ``params.n`` must be 1 here; ``add_samples`` takes any ``n``.
        """
        if getattr(params, "n", 1) != 1:
            raise ValueError(f"n: add_request streams one sample, got n={params.n}; use add_samples")
        [stream] = await self.add_samples(request_id, prompt, params)
        return stream

    async def add_samples(self, request_id: str, prompt: Any, params: Any) -> list[RequestStream]:
        """Queue a request of ``params.n`` samples (one prompt prefill, shared KV); returns one stream
        per sample, in sample order, once the engine has accepted it. Errors as ``add_request``."""
        if not self.is_alive:
            raise EngineDeadError(f"engine is not running{f': {self._error}' if self._error else ''}")
        loop = asyncio.get_running_loop()
        sample_ids = sample_request_ids(request_id, getattr(params, "n", 1))
        streams = [RequestStream(sid, self) for sid in sample_ids]
        pending = _PendingAdd(request_id, prompt, params, loop, loop.create_future(), streams)
        with self._lock:
            if self._stop.is_set():  # checked under the lock: the thread drains pending work under it
                raise EngineDeadError("engine is shutting down")
            if len(self._pending) + self._stats.num_waiting >= self.max_waiting:
                raise QueueFullError(self.max_waiting, self.retry_after_s)
            if request_id in self._pending or request_id in self._streams:
                raise ValueError(f"request_id: duplicate id {request_id!r}")
            self._pending[request_id] = pending
        self._wake.set()
        try:
            await pending.accepted
        except asyncio.CancelledError:
            self.abort(request_id)  # in the engine: all its samples
            for sid in sample_ids if len(sample_ids) > 1 else ():
                self.abort(sid)  # and their streams
            raise
        return streams

    async def generate(self, request_id: str, prompt: Any, params: Any) -> AsyncIterator[Any]:
        """Yield the request's outputs; aborts it if the consumer stops early."""
        stream = await self.add_request(request_id, prompt, params)
        try:
            async for out in stream:
                yield out
        finally:
            stream.cancel()

    def abort(self, request_id: str) -> None:
        """Abort a request wherever it is (thread-safe, idempotent); its KV blocks are freed next step."""
        with self._lock:
            pending = self._pending.pop(request_id, None)
            if pending is None:
                self._aborts.add(request_id)
        if pending is not None:
            self._send(pending.loop, _resolve, pending.accepted, asyncio.CancelledError())
        self._wake.set()
        for observe in self._abort_observers:
            observe(request_id)

    @contextmanager
    def observe_aborts(self, callback: Callable[[str], None]) -> Iterator[None]:
        """Call ``callback(request_id)`` on every abort asked for in the ``with`` block (from any thread)."""
        self._abort_observers = (*self._abort_observers, callback)
        try:
            yield
        finally:
            self._abort_observers = tuple(c for c in self._abort_observers if c is not callback)

    async def call(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(engine)`` in the engine thread between two steps and return its result.

        The one safe way to touch the engine while it runs, e.g. to load new weights
        (``lambda e: e.load_weights(state_dict, version)``) or to read its block manager.
        """
        if not self.is_alive:
            raise EngineDeadError("engine is not running")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._lock:
            if self._stop.is_set():
                raise EngineDeadError("engine is shutting down")
            self._calls.append((fn, loop, fut))
        self._wake.set()
        return await fut

    # --- the engine thread ---------------------------------------------------------------------------

    def _run_calls(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
        for fn, loop, fut in calls:
            try:
                result, error = fn(self.engine), None
            except Exception as e:
                result, error = None, e
            self._send(loop, _settle, fut, result, error)

    def _send(self, loop: asyncio.AbstractEventLoop, fn: Callable, *args: Any) -> bool:
        try:
            loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:  # the loop is closed: its consumer is gone
            return False

    def _apply_pending(self) -> None:
        with self._lock:
            aborts, self._aborts = self._aborts, set()
            pending, self._pending = self._pending, {}
            for request_id in aborts:
                self.engine.abort_request(request_id)
                self._streams.pop(request_id, None)
            results: list[tuple[_PendingAdd, Exception | None]] = []
            for add in pending.values():
                try:
                    self.engine.add_request(add.request_id, add.prompt, add.params)
                except Exception as e:  # rejected: the caller gets the error (ValueError names the field)
                    results.append((add, e))
                    continue
                for stream in add.streams:
                    self._streams[stream.request_id] = (add.loop, stream)
                results.append((add, None))
            # snapshot before anyone hears back, so a caller never sees stats older than its own answer
            self._stats = self.engine.stats()
            for add, error in results:
                if not self._send(add.loop, _resolve, add.accepted, error) and error is None:
                    self.engine.abort_request(add.request_id)
                    for stream in add.streams:
                        self._streams.pop(stream.request_id)

    def _publish(self, outputs: list) -> None:
        for out in outputs:
            entry = self._streams.get(out.request_id)
            if entry is None:
                continue
            loop, stream = entry
            if out.finished:
                del self._streams[out.request_id]
            if not self._send(loop, stream._queue.put_nowait, out) and not out.finished:
                self.engine.abort_request(out.request_id)
                del self._streams[out.request_id]

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._run_calls()
                self._apply_pending()
                if not self.engine.has_unfinished_requests():
                    self._wake.wait(timeout=1.0)
                    self._wake.clear()
                    continue
                outputs = self.engine.step()
                with self._lock:
                    self._stats = self.engine.stats()  # before publishing, as in _apply_pending
                    self._publish(outputs)
                if self._on_step is not None:
                    try:
                        self._on_step(outputs, self._stats)
                    except Exception:
                        logger.exception("on_step callback failed")
        except BaseException as e:
            logger.exception("engine step failed; the engine thread stops")
            self._error = e
        finally:
            self._stop.set()
            self._fail_all(EngineDeadError(f"engine stopped{f': {self._error}' if self._error else ''}"))

    def _fail_all(self, error: EngineDeadError) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            streams, self._streams = self._streams, {}
            for add in pending.values():
                self._send(add.loop, _resolve, add.accepted, error)
            calls, self._calls = self._calls, []
            for _, loop, fut in calls:
                self._send(loop, _settle, fut, None, error)
            for request_id, (loop, stream) in streams.items():
                if self._error is None:
                    self.engine.abort_request(request_id)
                self._send(loop, stream._queue.put_nowait, error)
            self._stats = self.engine.stats() if self._error is None else self._stats
