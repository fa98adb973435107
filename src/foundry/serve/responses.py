"""Engine outputs → OpenAI's answer: one ``respond`` (whole response) and one ``stream`` (SSE chunks).

Completions and chat answer the same way: choices in index order, usage over each prompt once, a usage
chunk at the end of a stream when asked for, an error event if the engine dies mid-stream, then
``data: [DONE]``. What differs is only how one choice looks, so each endpoint has a small *shape*:
``choice`` builds a final choice, ``chunk_choice`` a streamed one (keeping whatever it must remember
between chunks), and ``response``/``chunk`` wrap the choices in the endpoint's envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.types import Receive

from foundry.serve.async_engine import RequestStream
from foundry.serve.openai_adapter import APIError
from foundry.serve.outputs import RequestOutput, TokenLogprob
from foundry.serve.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionResponse,
    ChatLogprobs,
    CompletionChoice,
    CompletionLogprobs,
    CompletionResponse,
    DeltaMessage,
    Usage,
    chat_logprobs,
    completion_logprobs,
    usage_of,
)
from foundry.serve.streams import ClientDisconnected, collect, event_stream, merge, sse


@dataclass
class _Shape:
    """What every choice and envelope of one response shares."""

    response_model: ClassVar[type[BaseModel]]
    chunk_model: ClassVar[type[BaseModel]]

    request_id: str
    created: int
    model: str
    token_text: Callable[[int], str]  # decodes one token id, for logprobs
    want_logprobs: bool

    def response(self, choices: list[Any], usage: Usage) -> BaseModel:
        return self.response_model(
            id=self.request_id, created=self.created, model=self.model, choices=choices, usage=usage
        )

    def chunk(self, choices: list[Any], usage: Usage | None = None) -> BaseModel:
        return self.chunk_model(
            id=self.request_id, created=self.created, model=self.model, choices=choices, usage=usage
        )


@dataclass
class CompletionShape(_Shape):
    """``/v1/completions``: text choices, logprobs as parallel lists whose ``text_offset`` runs on across
    the chunks of a stream; a chunk is itself a ``text_completion`` object."""

    response_model = CompletionResponse
    chunk_model = CompletionResponse
    _offsets: dict[int, int] = field(default_factory=dict, init=False)  # choice → text offset so far

    def choice(self, i: int, final: RequestOutput, entries: list[TokenLogprob]) -> CompletionChoice:
        return CompletionChoice(
            index=i, text=final.text, logprobs=self._logprobs(entries, 0), finish_reason=final.finish_reason
        )

    def chunk_choice(self, i: int, out: RequestOutput) -> CompletionChoice:
        lp = self._logprobs(out.logprobs or [], self._offsets.get(i, 0))
        if lp is not None and lp.tokens:
            self._offsets[i] = lp.text_offset[-1] + len(lp.tokens[-1])
        return CompletionChoice(index=i, text=out.new_text, logprobs=lp, finish_reason=_finish_reason(out))

    def _logprobs(self, entries: list[TokenLogprob], offset: int) -> CompletionLogprobs | None:
        return completion_logprobs(entries, offset, self.token_text) if self.want_logprobs else None


@dataclass
class ChatShape(_Shape):
    """``/v1/chat/completions``: an assistant message per choice; in a stream, deltas whose first one
    per choice carries the role."""

    response_model = ChatCompletionResponse
    chunk_model = ChatCompletionChunk
    _started: set[int] = field(default_factory=set, init=False)  # choices that have had a delta

    def choice(self, i: int, final: RequestOutput, entries: list[TokenLogprob]) -> ChatChoice:
        return ChatChoice(
            index=i,
            message=AssistantMessage(content=final.text),
            logprobs=self._logprobs(entries),
            finish_reason=final.finish_reason,
        )

    def chunk_choice(self, i: int, out: RequestOutput) -> ChatChunkChoice:
        role = None if i in self._started else "assistant"
        self._started.add(i)
        return ChatChunkChoice(
            index=i,
            delta=DeltaMessage(role=role, content=out.new_text),
            logprobs=self._logprobs(out.logprobs or []),
            finish_reason=_finish_reason(out),
        )

    def _logprobs(self, entries: list[TokenLogprob]) -> ChatLogprobs | None:
        return chat_logprobs(entries, self.token_text) if self.want_logprobs else None


Shape = CompletionShape | ChatShape


def _finish_reason(out: RequestOutput) -> str | None:
    return out.finish_reason if out.finished else None


async def respond(shape: Shape, streams: list[RequestStream], receive: Receive, n: int) -> BaseModel:
    """The whole answer once every request has finished (499 if the client leaves first)."""
    try:
        outs = await collect(streams, receive)
    except ClientDisconnected:
        raise APIError(499, "client disconnected", type="client_closed_request") from None
    choices = [
        shape.choice(i, request_outs[-1], [e for o in request_outs for e in (o.logprobs or [])])
        for i, request_outs in enumerate(outs)
    ]
    return shape.response(choices, usage_of([o[-1] for o in outs], n))


def stream(
    shape: Shape, streams: list[RequestStream], receive: Receive, n: int, include_usage: bool
) -> StreamingResponse:
    """The answer as SSE: a chunk per engine output as it arrives, then usage if asked for."""

    async def chunks() -> AsyncIterator[str]:
        finals: dict[int, RequestOutput] = {}
        async for i, out in merge(streams):
            yield sse(shape.chunk([shape.chunk_choice(i, out)]))
            finals[i] = out
        if include_usage and finals:
            yield sse(shape.chunk([], usage=usage_of([finals[i] for i in sorted(finals)], n)))

    return event_stream(streams, chunks(), receive)
