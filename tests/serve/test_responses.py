"""The shared respond/stream path and the two endpoints' choice shapes, without an engine or a socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from foundry.serve.async_engine import EngineDeadError
from foundry.serve.outputs import RequestOutput, TokenLogprob
from foundry.serve.responses import ChatShape, CompletionShape, respond, stream

TEXT = {1: "ab", 2: "c", 3: "def"}


def output(ids: list[int], text: str, new_text: str, finished: bool = False) -> RequestOutput:
    """The output after token ``ids[-1]``: ``ids`` are all the tokens so far."""
    new_ids = ids[-1:]
    return RequestOutput(
        request_id="r",
        prompt_token_ids=[9, 9],
        output_token_ids=ids,
        new_token_ids=new_ids,
        text=text,
        new_text=new_text,
        logprobs=[TokenLogprob(t, -float(t), {t: -float(t)}) for t in new_ids],
        finished=finished,
        finish_reason="length" if finished else None,
        arrival_time=0.0,
        first_token_time=None,
        finish_time=None,
    )


# one choice's outputs, step by step: "ab", "c", "def"
STEPS = [
    output([1], "ab", "ab"),
    output([1, 2], "abc", "c"),
    output([1, 2, 3], "abcdef", "def", finished=True),
]


class FakeStream:
    """A ``RequestStream`` stand-in: yields its items (raising an exception item), records ``cancel``."""

    def __init__(self, items: list[Any]) -> None:
        self.items, self.cancelled = items, False

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for item in self.items:
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        self.cancelled = True


async def connected() -> dict:
    await asyncio.Event().wait()  # the client never leaves
    return {"type": "http.disconnect"}


def shape(cls, want_logprobs: bool = True):
    return cls("id-1", 7, "m", lambda t: TEXT[t], want_logprobs)


def sse_events(response) -> list[str]:
    async def body() -> list[str]:
        return [chunk async for chunk in response.body_iterator]

    return asyncio.run(body())


def test_completion_chunk_offsets_run_on_and_match_the_whole_response() -> None:
    s = shape(CompletionShape)
    chunks = [s.chunk_choice(0, out) for out in STEPS]
    assert [c.logprobs.text_offset for c in chunks] == [[0], [2], [3]]
    assert [c.finish_reason for c in chunks] == [None, None, "length"]
    whole = s.choice(0, STEPS[-1], [e for o in STEPS for e in o.logprobs])
    assert whole.text == "abcdef" and whole.logprobs.text_offset == [0, 2, 3]
    # a second choice counts its own offsets from zero
    assert s.chunk_choice(1, STEPS[0]).logprobs.text_offset == [0]


def test_chat_role_only_in_each_choices_first_delta() -> None:
    s = shape(ChatShape)
    roles = [s.chunk_choice(i, out).delta.role for i, out in [(0, STEPS[0]), (1, STEPS[0]), (0, STEPS[1])]]
    assert roles == ["assistant", "assistant", None]
    assert shape(ChatShape, want_logprobs=False).chunk_choice(0, STEPS[0]).logprobs is None


def test_respond_orders_choices_by_index_and_counts_each_prompt_once() -> None:
    streams = [FakeStream(STEPS), FakeStream(STEPS[:1] + [output([1, 2], "abc", "c", finished=True)])]
    answer = asyncio.run(respond(shape(ChatShape), streams, connected, n=2))
    assert [c.index for c in answer.choices] == [0, 1]
    assert [c.message.content for c in answer.choices] == ["abcdef", "abc"]
    assert answer.usage.prompt_tokens == 2 and answer.usage.completion_tokens == 3 + 2
    assert all(s.cancelled for s in streams)


def test_stream_ends_with_usage_then_done() -> None:
    streams = [FakeStream(STEPS)]
    events = sse_events(stream(shape(CompletionShape), streams, connected, n=1, include_usage=True))
    assert events[-1] == "data: [DONE]\n\n"
    bodies = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(b["choices"][0]["text"] for b in bodies[:-1]) == "abcdef"
    assert bodies[-1]["choices"] == [] and bodies[-1]["usage"]["completion_tokens"] == 3
    assert streams[0].cancelled


def test_engine_death_mid_stream_is_an_error_event_before_done() -> None:
    streams = [FakeStream([STEPS[0], EngineDeadError("engine stopped")])]
    events = sse_events(stream(shape(ChatShape), streams, connected, n=1, include_usage=True))
    assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"
    assert json.loads(events[1].removeprefix("data: "))["error"]["code"] == "engine_dead"
    assert events[2:] == ["data: [DONE]\n\n"]
