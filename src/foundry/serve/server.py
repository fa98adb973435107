"""The OpenAI-compatible HTTP server: requests in, sampling params and engine calls out.

No scheduling happens here. Each handler validates its request, turns it into token ids and a
``SamplingParams``, hands it to the ``AsyncEngine`` and streams the engine's outputs back (SSE in
OpenAI's chunk format, ending with ``data: [DONE]``) or collects them into one response. A client that
disconnects has its request aborted, which frees its KV blocks at the engine's next step: the handler
waits on the ASGI ``http.disconnect`` message beside the engine's outputs, so it hears of the departure
as it happens rather than at a polling interval.

Errors use OpenAI's body ``{"error": {"message", "type", "param", "code"}}``: invalid requests → 400
naming the field, waiting queue full → 429 with ``Retry-After``, engine stopped → 503.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import Receive

from foundry.serve.async_engine import AsyncEngine, EngineDeadError, QueueFullError, RequestStream
from foundry.serve.metrics import ServerMetrics
from foundry.serve.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatLogprobs,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    DeltaMessage,
    ModelCard,
    ModelList,
    chat_logprobs,
    completion_logprobs,
    error_body,
    new_id,
    now,
    usage_of,
)

T = TypeVar("T")

class APIError(Exception):
    """An error answered with OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers


def _field_of(message: str) -> str | None:
    """The field a ``ValueError`` names: its message starts with ``field:`` by the engine's convention."""
    m = re.match(r"([A-Za-z_][\w.\[\]]*)\s*:", message)
    return m.group(1) if m else None


# ---------------------------------------------------------------------------------------------------
# Requests → token ids and sampling params


class _Handler:
    """The per-app state the endpoints need: the engine wrapper, the served name, the tokenizer."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.model_name: str = engine.engine.model_name
        self.max_model_len: int = engine.engine.max_model_len
        self.tokenizer = engine.engine.tokenizer

    def check_model(self, model: str) -> None:
        if model != self.model_name:
            raise APIError(
                400,
                f"model {model!r} is not served here; this server serves {self.model_name!r}",
                param="model",
                code="model_not_found",
            )

    def check_unsupported(self, req: CompletionRequest | ChatCompletionRequest) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(req, name) != 0:
                raise APIError(400, f"{name}: not supported (must be 0)", param=name)

    def prompt_ids(self, prompt: Any) -> list[int]:
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise APIError(400, "prompt: must not be empty", param="prompt")
        return ids

    def prompt_batch(self, prompt: Any) -> list[list[int]]:
        """A completion's ``prompt`` (a string, token ids, or a list of either) as token id lists."""
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str | list):
            return [self.prompt_ids(p) for p in prompt]
        return [self.prompt_ids(prompt)]

    def sampling_params(
        self,
        req: CompletionRequest | ChatCompletionRequest,
        max_tokens: int | None,
        logprobs: int | None,
        num_prompt_tokens: int,
        prompt_field: str,
        logprobs_field: str,
    ):
        from foundry.serve import SamplingParams

        if max_tokens is None:
            max_tokens = max(1, self.max_model_len - num_prompt_tokens)
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if req.temperature is None else req.temperature,
            top_k=-1 if req.top_k is None else req.top_k,
            top_p=1.0 if req.top_p is None else req.top_p,
            seed=req.seed,
            stop=stop,
            ignore_eos=req.ignore_eos,
            logprobs=logprobs,
        )
        try:
            params.validate()
        except ValueError as e:
            field = _field_of(str(e))
            if field == "logprobs":
                field = logprobs_field
            raise APIError(400, str(e), param=field) from None
        total = num_prompt_tokens + max_tokens
        if total > self.max_model_len:
            param = prompt_field if num_prompt_tokens >= self.max_model_len else "max_tokens"
            raise APIError(
                400,
                f"{param}: this model's maximum context length is {self.max_model_len} tokens; the request "
                f"needs {total} ({num_prompt_tokens} in the prompt + {max_tokens} max_tokens)",
                param=param,
                code="context_length_exceeded",
            )
        return params

    async def submit(
        self, request_id: str, prompt_ids: list[int], params: Any, prompt_field: str
    ) -> RequestStream:
        try:
            return await self.engine.add_request(request_id, prompt_ids, params)
        except QueueFullError as e:
            raise APIError(
                429,
                str(e),
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(max(1, math.ceil(e.retry_after)))},
            ) from None
        except EngineDeadError as e:
            raise APIError(503, str(e), type="service_unavailable", code="engine_dead") from None
        except ValueError as e:
            field = _field_of(str(e))
            raise APIError(400, str(e), param=prompt_field if field == "prompt" else field) from None

    @staticmethod
    def expand_n(prompts: list[list[int]], params: list[Any], n: int) -> tuple[list[list[int]], list[Any]]:
        """``n`` samples per prompt, prompt-major (choice index = prompt index * n + j); a seeded request
        gives sample j the seed ``seed + j`` so that the samples differ but stay reproducible."""
        out_prompts, out_params = [], []
        for ids, p in zip(prompts, params, strict=True):
            for j in range(n):
                out_prompts.append(ids)
                out_params.append(p if j == 0 or p.seed is None else dataclasses.replace(p, seed=p.seed + j))
        return out_prompts, out_params

    async def submit_all(
        self, request_id: str, prompts: list[list[int]], params: list[Any], prompt_field: str
    ) -> list[RequestStream]:
        """Submit one engine request per prompt (ids ``{request_id}-{i}``); all or none are accepted."""
        streams: list[RequestStream] = []
        try:
            for i, (ids, p) in enumerate(zip(prompts, params, strict=True)):
                streams.append(await self.submit(f"{request_id}-{i}", ids, p, prompt_field))
        except BaseException:
            for stream in streams:
                stream.cancel()
            raise
        return streams

    # --- logprobs in OpenAI's two shapes --------------------------------------------------------------

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def completion_logprobs(self, entries: list, offset: int) -> CompletionLogprobs:
        return completion_logprobs(entries, offset, self.token_text)

    def chat_logprobs(self, entries: list) -> ChatLogprobs:
        return chat_logprobs(entries, self.token_text)


async def _merge(streams: list[RequestStream]) -> AsyncIterator[tuple[int, Any]]:
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


async def _collect(streams: list[RequestStream], receive: Receive) -> list[list[Any]]:
    """All outputs per request; aborts them (and answers nothing) if the client goes away first."""

    async def drain() -> list[list[Any]]:
        outs: list[list[Any]] = [[] for _ in streams]
        async for i, out in _merge(streams):
            outs[i].append(out)
        return outs

    disconnected = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        return await _unless_disconnected(drain(), disconnected)
    except ClientDisconnected:
        raise APIError(499, "client disconnected", type="client_closed_request") from None
    finally:
        disconnected.cancel()
        for stream in streams:
            stream.cancel()


def _sse(payload: Any) -> str:
    body = payload.model_dump_json() if hasattr(payload, "model_dump_json") else payload
    return f"data: {body}\n\n"


def _finish_reason(out: Any) -> str | None:
    return out.finish_reason if out.finished else None


async def _sse_stream(
    streams: list[RequestStream], chunks: AsyncIterator[str], receive: Receive
) -> AsyncIterator[str]:
    """Wrap a chunk generator: an engine failure becomes an error event; a client that disconnects ends
    it at once (whatever the ASGI server's spec version); the requests are always released."""
    import json

    disconnected = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        while True:
            try:
                chunk = await _unless_disconnected(anext(chunks), disconnected)
            except StopAsyncIteration:
                break
            yield chunk
    except EngineDeadError as e:
        yield _sse(json.dumps(error_body(str(e), "service_unavailable", code="engine_dead")))
    except ClientDisconnected:
        return
    finally:
        disconnected.cancel()
        for stream in streams:
            stream.cancel()
    yield "data: [DONE]\n\n"


def _event_stream(streams: list[RequestStream], chunks: AsyncIterator[str], receive: Receive) -> Response:
    return StreamingResponse(_sse_stream(streams, chunks, receive), media_type="text/event-stream")


# ---------------------------------------------------------------------------------------------------
# The app


def create_app(llm_engine: Any, *, max_waiting: int = 256, retry_after_s: float = 1.0) -> FastAPI:
    """An app serving ``llm_engine``; its engine thread starts and stops with the app's lifespan."""
    engine = AsyncEngine(
        llm_engine,
        max_waiting=max_waiting,
        retry_after_s=retry_after_s,
        on_step=lambda outputs, stats: metrics.on_step(outputs, stats),  # runs only after start()
    )
    metrics = ServerMetrics(engine.stats)
    h = _Handler(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        try:
            yield
        finally:
            await asyncio.to_thread(engine.shutdown)

    app = FastAPI(title="foundry serve", lifespan=lifespan)
    app.state.engine = engine
    app.state.metrics = metrics

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        if exc.status == 429:
            metrics.rejected.inc()
        return JSONResponse(
            error_body(exc.message, exc.type, exc.param, exc.code),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors() or [{"msg": "invalid request", "loc": ()}]
        # of a union's failed branches, a validator's own complaint says the most
        err = next((e for e in errors if e.get("type") == "value_error"), errors[0])
        if err.get("type") == "json_invalid":
            return JSONResponse(
                error_body(
                    f"malformed JSON body: {err.get('msg')}", "invalid_request_error", None, "invalid_json"
                ),
                status_code=400,
            )
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        # drop pydantic's union-branch tags (e.g. "str", "list[int]") so param is the field path
        path = [p for p in loc if not re.fullmatch(r"[a-z]+\[.*\]|str|int|float|bool|function-.*", p)]
        param = ".".join(path) if path else None
        msg = str(err.get("msg")).removeprefix("Value error, ")
        message = f"{param}: {msg}" if param else msg
        return JSONResponse(error_body(message, "invalid_request_error", param, None), status_code=400)

    @app.get("/health")
    async def health() -> Response:
        if engine.is_alive:
            return JSONResponse({"status": "ok"})
        return JSONResponse(error_body("engine is not running", "service_unavailable"), status_code=503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=h.model_name, created=now(), max_model_len=h.max_model_len)])

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, raw: Request):
        h.check_model(req.model)
        h.check_unsupported(req)
        for name, bad in (
            ("echo", req.echo),
            ("suffix", req.suffix is not None),
            ("best_of", req.best_of not in (None, 1)),
        ):
            if bad:
                raise APIError(400, f"{name}: not supported", param=name)
        prompts = h.prompt_batch(req.prompt)
        params = [
            h.sampling_params(req, req.max_tokens, req.logprobs, len(ids), "prompt", "logprobs")
            for ids in prompts
        ]
        prompts, params = h.expand_n(prompts, params, req.n)
        request_id, created = new_id("cmpl"), now()
        streams = await h.submit_all(request_id, prompts, params, "prompt")
        want_logprobs = req.logprobs is not None

        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)

            async def chunks() -> AsyncIterator[str]:
                offsets, finals = [0] * len(streams), {}
                async for i, out in _merge(streams):
                    lp = h.completion_logprobs(out.logprobs or [], offsets[i]) if want_logprobs else None
                    if lp is not None and lp.tokens:
                        offsets[i] = lp.text_offset[-1] + len(lp.tokens[-1])
                    choice = CompletionChoice(
                        index=i, text=out.new_text, logprobs=lp, finish_reason=_finish_reason(out)
                    )
                    yield _sse(
                        CompletionResponse(
                            id=request_id, created=created, model=h.model_name, choices=[choice]
                        )
                    )
                    finals[i] = out
                if include_usage and finals:
                    usage = usage_of([finals[i] for i in sorted(finals)], req.n)
                    yield _sse(
                        CompletionResponse(
                            id=request_id, created=created, model=h.model_name, choices=[], usage=usage
                        )
                    )

            return _event_stream(streams, chunks(), raw.receive)

        outs = await _collect(streams, raw.receive)
        choices = []
        for i, request_outs in enumerate(outs):
            final = request_outs[-1]
            entries = [e for o in request_outs for e in (o.logprobs or [])]
            lp = h.completion_logprobs(entries, 0) if want_logprobs else None
            choices.append(
                CompletionChoice(index=i, text=final.text, logprobs=lp, finish_reason=final.finish_reason)
            )
        return CompletionResponse(
            id=request_id,
            created=created,
            model=h.model_name,
            usage=usage_of([o[-1] for o in outs], req.n),
            choices=choices,
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, raw: Request):
        h.check_model(req.model)
        h.check_unsupported(req)
        if req.top_logprobs is not None and not req.logprobs:
            raise APIError(400, "top_logprobs: requires logprobs=true", param="top_logprobs")
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        try:
            text = h.tokenizer.apply_chat_template(messages)
        except ValueError as e:
            raise APIError(400, f"messages: {e}", param="messages") from None
        ids = h.prompt_ids(text)
        max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        logprobs = (req.top_logprobs or 0) if req.logprobs else None
        params = h.sampling_params(req, max_tokens, logprobs, len(ids), "messages", "top_logprobs")
        prompts, params_n = h.expand_n([ids], [params], req.n)
        request_id, created = new_id("chatcmpl"), now()
        streams = await h.submit_all(request_id, prompts, params_n, "messages")

        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)

            async def chunks() -> AsyncIterator[str]:
                finals: dict[int, Any] = {}
                async for i, out in _merge(streams):
                    role = None if i in finals else "assistant"
                    delta = DeltaMessage(role=role, content=out.new_text)
                    lp = h.chat_logprobs(out.logprobs or []) if req.logprobs else None
                    choice = ChatChunkChoice(
                        index=i, delta=delta, logprobs=lp, finish_reason=_finish_reason(out)
                    )
                    yield _sse(
                        ChatCompletionChunk(
                            id=request_id, created=created, model=h.model_name, choices=[choice]
                        )
                    )
                    finals[i] = out
                if include_usage and finals:
                    yield _sse(
                        ChatCompletionChunk(
                            id=request_id,
                            created=created,
                            model=h.model_name,
                            choices=[],
                            usage=usage_of([finals[i] for i in sorted(finals)], req.n),
                        )
                    )

            return _event_stream(streams, chunks(), raw.receive)

        outs = await _collect(streams, raw.receive)
        choices = []
        for i, request_outs in enumerate(outs):
            final = request_outs[-1]
            entries = [e for o in request_outs for e in (o.logprobs or [])]
            choices.append(
                ChatChoice(
                    index=i,
                    message=AssistantMessage(content=final.text),
                    logprobs=h.chat_logprobs(entries) if req.logprobs else None,
                    finish_reason=final.finish_reason,
                )
            )
        return ChatCompletionResponse(
            id=request_id,
            created=created,
            model=h.model_name,
            usage=usage_of([o[-1] for o in outs], req.n),
            choices=choices,
        )

    return app


@contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn from a background thread; yields its base URL (port 0: a free one).

    For tests, notebooks and in-process clients. The socket is bound before the thread starts, so the
    port is known and taken; leaving the block shuts the server down (engine thread included).
    """
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="foundry-uvicorn", daemon=True
    )
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server failed to start")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
