"""The OpenAI-compatible HTTP server: the FastAPI app, its routes, error handlers and lifespan.

No scheduling happens here, and little else: ``openai_adapter`` turns a request into token ids and
``SamplingParams`` and submits them to the ``AsyncEngine``; ``responses`` answers with one response or
an SSE stream of chunks (completions and chat share that path, each with its own choice shape);
``streams`` merges the engine's outputs and hears a client's disconnect, which aborts its requests.

Errors use OpenAI's body ``{"error": {"message", "type", "param", "code"}}``: invalid requests → 400
naming the field, waiting queue full → 429 with ``Retry-After``, engine stopped → 503.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from foundry.serve.async_engine import AsyncEngine
from foundry.serve.http_thread import serve_in_thread
from foundry.serve.metrics import ServerMetrics
from foundry.serve.openai_adapter import APIError, OpenAIAdapter
from foundry.serve.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ModelCard,
    ModelList,
    error_body,
    new_id,
    now,
)
from foundry.serve.responses import ChatShape, CompletionShape, Shape, respond, stream
from foundry.serve.sampling_params import SamplingParams

__all__ = ["create_app", "serve_in_thread"]  # serve_in_thread lives in http_thread; re-exported


def create_app(llm_engine: Any, *, max_waiting: int = 256, retry_after_s: float = 1.0) -> FastAPI:
    """An app serving ``llm_engine``; its engine thread starts and stops with the app's lifespan."""
    engine = AsyncEngine(
        llm_engine,
        max_waiting=max_waiting,
        retry_after_s=retry_after_s,
        on_step=lambda outputs, stats: metrics.on_step(outputs, stats),  # runs only after start()
    )
    metrics = ServerMetrics(engine.stats)
    adapter = OpenAIAdapter(engine)

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
        return ModelList(
            data=[ModelCard(id=adapter.model_name, created=now(), max_model_len=adapter.max_model_len)]
        )

    async def answer(
        req: CompletionRequest | ChatCompletionRequest,
        raw: Request,
        inputs: tuple[list[list[int]], list[SamplingParams]],
        shape: Shape,
        prompt_field: str,
    ):
        """Submit ``n`` samples of each prompt, then answer whole or as a stream in ``shape``."""
        streams = await adapter.submit_all(shape.request_id, *inputs, prompt_field)
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return stream(shape, streams, raw.receive, req.n, include_usage)
        return await respond(shape, streams, raw.receive, req.n)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, raw: Request):
        inputs = adapter.completion_inputs(req)
        shape = CompletionShape(
            new_id("cmpl"), now(), adapter.model_name, adapter.token_text, req.logprobs is not None
        )
        return await answer(req, raw, inputs, shape, "prompt")

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, raw: Request):
        inputs = adapter.chat_inputs(req)
        shape = ChatShape(new_id("chatcmpl"), now(), adapter.model_name, adapter.token_text, req.logprobs)
        return await answer(req, raw, inputs, shape, "messages")

    return app
