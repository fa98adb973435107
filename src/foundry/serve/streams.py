"""Engine request streams → an HTTP answer: merging, collecting, SSE, and hearing the client leave.

A response may stand on several engine requests (a batch of prompts, ``n`` samples); ``merge``
interleaves their outputs as they arrive. A client that disconnects has its requests aborted, which
frees their KV blocks at the engine's next step: the handler waits on the ASGI ``http.disconnect``
message beside the engine's outputs, so it hears of the departure as it happens rather than at a
polling interval.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi.responses import StreamingResponse
from starlette.types import Receive

from foundry.serve.async_engine import EngineDeadError, RequestStream
from foundry.serve.protocol import error_body

T = TypeVar("T")


async def merge(streams: list[RequestStream]) -> AsyncIterator[tuple[int, Any]]:
    """Interleave several requests' outputs as ``(index, output)`` in arrival order."""
    if len(streams) == 1:  # the common case needs no tasks
        async for out in streams[0]:
            yield 0, out
        return
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(i: int, stream: RequestStream) -> None:
        try:
            async for out in stream:
                queue.put_nowait((i, out))
        except Exception as e:
            queue.put_nowait((i, e))
        finally:
            queue.put_nowait((i, done))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(streams)
        while remaining:
            i, item = await queue.get()
            if item is done:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()


# ---------------------------------------------------------------------------------------------------
# Hearing the client leave


class ClientDisconnected(Exception):
    """The client closed its connection before its answer was complete."""


async def _wait_for_disconnect(receive: Receive) -> None:
    """Return once the ASGI server reports ``http.disconnect`` (the request body is already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(work: Awaitable[T], disconnected: asyncio.Future) -> T:
    """``await work``, or raise ``ClientDisconnected`` the moment ``disconnected`` completes first."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # finished work wins a tie: the answer is complete
            return task.result()
        raise ClientDisconnected
    finally:
        task.cancel()


# ---------------------------------------------------------------------------------------------------
# The two ways to answer


async def collect(streams: list[RequestStream], receive: Receive) -> list[list[Any]]:
    """All outputs per request; raises ``ClientDisconnected`` (having aborted them) if the client goes
    away first."""

    async def drain() -> list[list[Any]]:
        outs: list[list[Any]] = [[] for _ in streams]
        async for i, out in merge(streams):
            outs[i].append(out)
        return outs

    disconnected = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        return await _unless_disconnected(drain(), disconnected)
    finally:
        disconnected.cancel()
        for stream in streams:
            stream.cancel()


def sse(payload: Any) -> str:
    """One server-sent event: a pydantic model as JSON, or a string as it is."""
    body = payload.model_dump_json() if hasattr(payload, "model_dump_json") else payload
    return f"data: {body}\n\n"


async def _sse_stream(
    streams: list[RequestStream], chunks: AsyncIterator[str], receive: Receive
) -> AsyncIterator[str]:
    """Wrap a chunk generator: an engine failure becomes an error event; a client that disconnects ends
    it at once (whatever the ASGI server's spec version); the requests are always released."""
    disconnected = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        while True:
            try:
                chunk = await _unless_disconnected(anext(chunks), disconnected)
            except StopAsyncIteration:
                break
            yield chunk
    except EngineDeadError as e:
        yield sse(json.dumps(error_body(str(e), "service_unavailable", code="engine_dead")))
    except ClientDisconnected:
        return
    finally:
        disconnected.cancel()
        for stream in streams:
            stream.cancel()
    yield "data: [DONE]\n\n"


def event_stream(
    streams: list[RequestStream], chunks: AsyncIterator[str], receive: Receive
) -> StreamingResponse:
    """``chunks`` (SSE events) as a ``text/event-stream`` response ending with ``data: [DONE]``."""
    return StreamingResponse(_sse_stream(streams, chunks, receive), media_type="text/event-stream")
