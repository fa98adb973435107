"""The OpenAI-compatible server on loopback, driven by the real `openai` client and by raw HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundry.serve import EngineConfig, LLMEngine, SamplingParams
from foundry.serve.server import create_app, serve_in_thread
from tests.waiting import StepGate, until, wait_until, watch_aborts

MODEL = "foundry-tiny"
CONFIG = EngineConfig(max_num_seqs=4, max_model_len=256, num_device_blocks=64)


@pytest.fixture(scope="module")
def server() -> Iterator[SimpleNamespace]:
    engine = LLMEngine(CONFIG)
    app = create_app(engine, max_waiting=32)
    with serve_in_thread(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        yield SimpleNamespace(url=url, app=app, engine=engine, client=client)


@pytest.fixture(scope="module")
def offline() -> LLMEngine:
    """A second engine with the same config (same seeded weights), driven offline: the oracle."""
    return LLMEngine(CONFIG)


def idle(server: SimpleNamespace) -> bool:
    s = server.app.state.engine.stats()
    return s.num_running == 0 and s.num_waiting == 0 and s.device_kv_usage == 0.0


# --- the openai client, end to end ---------------------------------------------------------------


def test_models_and_health(server: SimpleNamespace) -> None:
    models = server.client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_completion_matches_the_offline_engine_greedy(server: SimpleNamespace, offline: LLMEngine) -> None:
    prompt = "The quick brown fox"
    r = server.client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=12, temperature=0, extra_body={"ignore_eos": True}
    )
    want = offline.generate([prompt], SamplingParams(max_tokens=12, temperature=0, ignore_eos=True))[0]
    choice = r.choices[0]
    assert choice.text == want.text and choice.finish_reason == "length"
    assert r.usage.prompt_tokens == len(offline.tokenizer.encode(prompt)) == len(want.prompt_token_ids)
    assert r.usage.completion_tokens == 12 and r.usage.total_tokens == r.usage.prompt_tokens + 12
    assert r.object == "text_completion" and r.model == MODEL and r.id.startswith("cmpl-")


def test_streaming_completion_concatenates_to_the_non_streaming_text(server: SimpleNamespace) -> None:
    kw = dict(
        model=MODEL,
        prompt=[72, 101, 108, 108, 111],
        max_tokens=10,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    full = server.client.completions.create(**kw)
    chunks = list(server.client.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    text_chunks = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].text for c in text_chunks) == full.choices[0].text
    assert [c.choices[0].finish_reason for c in text_chunks][-1] == "length"
    assert all(c.choices[0].finish_reason is None for c in text_chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert chunks[-1].usage.prompt_tokens == 5 and len({c.id for c in chunks}) == 1


def test_batched_prompts_give_one_choice_each(server: SimpleNamespace, offline: LLMEngine) -> None:
    prompts = ["first prompt", "second", "ABC"]
    kw = dict(model=MODEL, prompt=prompts, max_tokens=6, temperature=0, extra_body={"ignore_eos": True})
    r = server.client.completions.create(**kw)
    want = offline.generate(prompts, SamplingParams(max_tokens=6, temperature=0, ignore_eos=True))
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert [c.text for c in r.choices] == [w.text for w in want]
    assert r.usage.prompt_tokens == sum(len(w.prompt_token_ids) for w in want)
    assert r.usage.completion_tokens == 18
    chunks = list(server.client.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    texts = ["", "", ""]
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] += choice.text
    assert texts == [w.text for w in want] and chunks[-1].usage.completion_tokens == 18
    ids = server.client.completions.create(model=MODEL, prompt=[[65, 66, 67], [68, 69]], max_tokens=2)
    assert len(ids.choices) == 2 and ids.usage.prompt_tokens == 5
    assert wait_until(lambda: idle(server))


def test_n_samples_per_prompt(server: SimpleNamespace) -> None:
    kw = dict(model=MODEL, max_tokens=5, temperature=1.0, seed=11, extra_body={"ignore_eos": True})
    r = server.client.completions.create(prompt=["one", "two"], n=3, **kw)
    assert [c.index for c in r.choices] == list(range(6))
    assert r.usage.prompt_tokens == 3 + 3 and r.usage.completion_tokens == 6 * 5  # prompts counted once
    single = server.client.completions.create(prompt="two", **kw)
    assert r.choices[3].text == single.choices[0].text  # sample 0 keeps the request's seed
    assert len({c.text for c in r.choices[:3]}) > 1  # seeds seed+j: the samples differ
    chat = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        temperature=0,
        n=2,
        extra_body={"ignore_eos": True},
    )
    full = server.client.chat.completions.create(**chat)
    assert len(full.choices) == 2 and full.choices[0].message.content == full.choices[1].message.content
    texts, roles = ["", ""], [None, None]
    for c in server.client.chat.completions.create(**chat, stream=True):
        for choice in c.choices:
            roles[choice.index] = roles[choice.index] or choice.delta.role
            texts[choice.index] += choice.delta.content or ""
    assert roles == ["assistant", "assistant"] and texts == [c.message.content for c in full.choices]
    assert wait_until(lambda: idle(server))


def test_stop_string_ends_the_text_before_it_streaming_or_not(
    server: SimpleNamespace, offline: LLMEngine
) -> None:
    base = dict(model=MODEL, prompt="stop here", temperature=0, extra_body={"ignore_eos": True})
    full = offline.generate(["stop here"], SamplingParams(max_tokens=40, temperature=0, ignore_eos=True))[
        0
    ].text
    # a printable two-character stop string from the middle of the greedy text
    k = next(
        i for i in range(3, len(full) - 1) if full[i : i + 2].isprintable() and full[i : i + 2].isascii()
    )
    stop = full[k : k + 2]
    k = full.index(stop)
    r = server.client.completions.create(max_tokens=40, stop=[stop], **base)
    assert r.choices[0].text == full[:k] and r.choices[0].finish_reason == "stop"
    chunks = list(server.client.completions.create(max_tokens=40, stop=stop, stream=True, **base))
    assert "".join(c.choices[0].text for c in chunks) == full[:k]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_ends_with_done_in_openai_sse_format(server: SimpleNamespace) -> None:
    body = {"model": MODEL, "prompt": "abc", "max_tokens": 3, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "text_completion"


def test_completion_logprobs_in_openai_shape(server: SimpleNamespace) -> None:
    r = server.client.completions.create(
        model=MODEL, prompt="hello", max_tokens=6, temperature=0, logprobs=3, extra_body={"ignore_eos": True}
    )
    lp = r.choices[0].logprobs
    n = r.usage.completion_tokens
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n
    for tok_lp, top in zip(lp.token_logprobs, lp.top_logprobs, strict=True):
        assert tok_lp <= 0 and 1 <= len(top) <= 3
        assert tok_lp == pytest.approx(max(top.values()), abs=1e-5)  # greedy picks the argmax
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(n)]


def test_chat_completion_and_its_stream_agree(server: SimpleNamespace, offline: LLMEngine) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    kw = dict(model=MODEL, messages=messages, max_tokens=8, temperature=0, extra_body={"ignore_eos": True})
    r = server.client.chat.completions.create(**kw)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    prompt = offline.tokenizer.apply_chat_template(messages)
    want = offline.generate([prompt], SamplingParams(max_tokens=8, temperature=0, ignore_eos=True))[0]
    assert r.choices[0].message.content == want.text
    assert r.usage.prompt_tokens == len(want.prompt_token_ids) and r.usage.completion_tokens == 8
    chunks = list(server.client.chat.completions.create(**kw, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == want.text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_logprobs_in_openai_shape(server: SimpleNamespace) -> None:
    r = server.client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
        extra_body={"ignore_eos": True},
    )
    content = r.choices[0].logprobs.content
    assert len(content) == 5
    for entry in content:
        assert len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-5)
        assert entry.bytes == list(entry.token.encode())
    streamed = list(
        server.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=5,
            temperature=0,
            logprobs=True,
            top_logprobs=2,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    tokens = [
        e.token for c in streamed for e in (c.choices[0].logprobs.content if c.choices[0].logprobs else [])
    ]
    assert tokens == [e.token for e in content]


def test_seeded_sampling_is_reproducible(server: SimpleNamespace) -> None:
    kw = dict(
        model=MODEL, prompt="seed", max_tokens=8, temperature=1.0, seed=7, extra_body={"ignore_eos": True}
    )
    a, b = (server.client.completions.create(**kw).choices[0].text for _ in range(2))
    assert a == b


# --- errors ----------------------------------------------------------------------------------------


def post(server: SimpleNamespace, path: str, body: object) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(f"{server.url}{path}", content=content, headers={"content-type": "application/json"})


def ok_completion(**kw: object) -> dict:
    return {"model": MODEL, "prompt": "hi", "max_tokens": 4, **kw}


def ok_chat(**kw: object) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **kw}


@pytest.mark.parametrize(
    ("path", "body", "param", "code"),
    [
        ("/v1/completions", "{not json", None, "invalid_json"),
        ("/v1/chat/completions", '{"model": "foundry-tiny", "messages": [', None, "invalid_json"),
        ("/v1/completions", ok_completion(model="gpt-4"), "model", "model_not_found"),
        ("/v1/chat/completions", ok_chat(model="gpt-4"), "model", "model_not_found"),
        ("/v1/completions", ok_completion(prompt="x" * 300), "prompt", "context_length_exceeded"),
        ("/v1/completions", ok_completion(max_tokens=255), "max_tokens", "context_length_exceeded"),
        (
            "/v1/chat/completions",
            ok_chat(messages=[{"role": "user", "content": "x" * 300}]),
            "messages",
            "context_length_exceeded",
        ),
        ("/v1/completions", ok_completion(temperature=-1), "temperature", None),
        ("/v1/completions", ok_completion(top_p=0), "top_p", None),
        ("/v1/completions", ok_completion(top_p=1.5), "top_p", None),
        ("/v1/completions", ok_completion(max_tokens=0), "max_tokens", None),
        ("/v1/completions", ok_completion(temperature="hot"), "temperature", None),
        ("/v1/completions", ok_completion(logprobs=21), "logprobs", None),
        ("/v1/completions", ok_completion(stop=[""]), "stop", None),
        ("/v1/completions", ok_completion(n=0), "n", None),
        ("/v1/chat/completions", ok_chat(n=65), "n", None),
        ("/v1/completions", ok_completion(prompt=""), "prompt", None),
        ("/v1/completions", ok_completion(prompt=[1, 100000]), "prompt", None),
        ("/v1/completions", {"model": MODEL}, "prompt", None),
        ("/v1/chat/completions", ok_chat(top_logprobs=2), "top_logprobs", None),
        ("/v1/chat/completions", ok_chat(logprobs=True, top_logprobs=30), "top_logprobs", None),
        ("/v1/chat/completions", ok_chat(messages=[]), "messages", None),
        (
            "/v1/chat/completions",
            ok_chat(messages=[{"role": "robot", "content": "hi"}]),
            "messages.0.role",
            None,
        ),
        # lone UTF-16 surrogates are legal JSON but not text: 400 naming the field, not a tokenizer 500
        ("/v1/completions", ok_completion(prompt="\ud800"), "prompt", None),
        ("/v1/completions", ok_completion(prompt=["fine", "bad \udfff"]), "prompt.1", None),
        ("/v1/completions", ok_completion(stop=["\ud800"]), "stop.0", None),
        ("/v1/chat/completions", ok_chat(messages=[{"role": "user", "content": "\ud83d"}]),
         "messages.0.content", None),
        (
            "/v1/chat/completions",
            ok_chat(messages=[{"role": "user", "content": [{"type": "text", "text": "\udc00"}]}]),
            "messages.0.content.0.text",
            None,
        ),
    ],
)
def test_bad_requests_get_400_with_an_openai_error_body(
    server: SimpleNamespace, path: str, body: object, param: str | None, code: str | None
) -> None:
    r = post(server, path, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["code"] == code
    if param is not None:
        assert err["message"].startswith(param.split(".")[0])
    assert idle(server) or wait_until(lambda: idle(server))


# any text, lone UTF-16 surrogates included (hypothesis' default text excludes them)
ANY_TEXT = st.text(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=ANY_TEXT, content=ANY_TEXT, stop=ANY_TEXT)
def test_fuzzed_text_gets_an_answer_or_a_400_never_a_500(
    server: SimpleNamespace, prompt: str, content: str, stop: str
) -> None:
    common = {"model": MODEL, "max_tokens": 1, "stop": [stop]}
    for path, body in (
        ("/v1/completions", {**common, "prompt": prompt}),
        ("/v1/chat/completions", {**common, "messages": [{"role": "user", "content": content}]}),
    ):
        r = post(server, path, body)
        assert r.status_code in (200, 400), r.text
        if r.status_code == 400:
            assert r.json()["error"]["param"] is not None


def test_openai_client_raises_bad_request_with_the_param(server: SimpleNamespace) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        server.client.completions.create(model=MODEL, prompt="hi", temperature=-0.5)
    assert e.value.status_code == 400 and e.value.body["param"] == "temperature"


def test_unknown_route_is_fastapis_404(server: SimpleNamespace) -> None:
    r = httpx.get(f"{server.url}/v1/nothing-here")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    assert httpx.get(f"{server.url}/v1/completions").status_code == 405


# --- cancellation frees KV blocks ------------------------------------------------------------------


def open_request(url: str, path: str, body: dict) -> socket.socket:
    """Send a POST over a raw socket and leave the answer unread: the test decides when to hang up."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    payload = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return sock


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_a_client_that_hangs_up_frees_its_slot_within_one_engine_step(server: SimpleNamespace, stream: bool):
    engine, async_engine = server.engine, server.app.state.engine
    before = async_engine.stats()
    body = {"model": MODEL, "prompt": "hang up", "max_tokens": 200, "ignore_eos": True, "stream": stream}
    with StepGate(engine) as gate, watch_aborts(async_engine) as aborted:
        sock = open_request(server.url, "/v1/completions", body)
        gate.run(2)  # prefill and one decode
        assert gate.wait_for(lambda g: g.waiting)  # the engine has begun a third step, held at the gate
        assert wait_until(lambda: async_engine.stats().num_running == 1)
        assert async_engine.stats().device_kv_usage > 0  # it holds blocks
        if stream:  # the client has seen its first tokens
            received = b""
            while b"data: " not in received:
                chunk = sock.recv(65536)
                assert chunk, "the server closed the stream"
                received += chunk
        sock.close()
        # the server hears the hang-up while the engine stands still: no step is needed to notice it
        assert aborted.wait(60) and gate.steps == 2
        gate.allow(1)  # the step already under way finishes; the abort applies at the boundary after it
        assert wait_until(lambda: async_engine.stats().num_aborted == before.num_aborted + 1)
        assert gate.steps == 3 and not engine.has_unfinished_requests()
    after = async_engine.stats()
    assert after.num_finished == before.num_finished and idle(server)  # aborted, never finished
    assert engine.block_manager.num_free_device_blocks == engine.block_manager.device.num_blocks
    engine.block_manager.check_invariants()


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_the_hang_up_is_heard_from_the_asgi_message_not_at_a_polling_interval(
    server: SimpleNamespace, stream: bool
) -> None:
    """Drive the app as an ASGI server would: the abort must follow ``http.disconnect`` within a few
    turns of the event loop, with no timer in between (so a polling handler fails this test)."""
    engine, async_engine = server.engine, server.app.state.engine
    payload = json.dumps({"model": MODEL, "prompt": "asgi", "max_tokens": 200, "stream": stream}).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": "/v1/completions", "raw_path": b"/v1/completions",
        "query_string": b"", "root_path": "", "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    hung_up = asyncio.Event()
    messages = [{"type": "http.request", "body": payload, "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        pass

    async def scenario(gate: StepGate, aborted) -> int:
        app_task = asyncio.create_task(server.app(scope, receive, send))
        await gate.held_async()  # the request is in the engine, which is held before its first step
        assert not aborted.is_set()
        hung_up.set()
        turns = 0
        while not aborted.is_set() and turns < 100:
            await asyncio.sleep(0)  # one turn of the event loop; no time needs to pass
            turns += 1
        gate.open()
        await app_task
        return turns

    with StepGate(engine) as gate, watch_aborts(async_engine) as aborted:
        turns = asyncio.run(scenario(gate, aborted))
    assert aborted.is_set() and turns < 100, "the abort waited for something other than the message"
    assert wait_until(lambda: idle(server))


# --- metrics ---------------------------------------------------------------------------------------


def test_metrics_expose_the_series(server: SimpleNamespace) -> None:
    server.client.completions.create(model=MODEL, prompt="m", max_tokens=3, extra_body={"ignore_eos": True})
    text = httpx.get(f"{server.url}/metrics").text
    for name in (
        "foundry_num_requests_waiting",
        "foundry_num_requests_running",
        "foundry_num_requests_swapped",
        "foundry_kv_cache_usage_ratio",
        "foundry_num_preemptions_total",
        "foundry_num_swapped_out_total",
        "foundry_num_swapped_in_total",
        "foundry_time_to_first_token_seconds_bucket",
        "foundry_time_per_output_token_seconds_bucket",
        "foundry_e2e_request_latency_seconds_bucket",
        "foundry_generation_tokens_total",
        "foundry_requests_rejected_total",
    ):
        assert f"\n{name}" in text, name
    count = next(
        line for line in text.splitlines() if line.startswith("foundry_e2e_request_latency_seconds_count")
    )
    assert float(count.split()[-1]) >= 1
    assert 'foundry_requests_finished_total{finish_reason="length"}' in text


def test_each_app_has_its_own_registry(server: SimpleNamespace) -> None:
    other = create_app(server.engine)  # never started: only its registry matters here
    assert other.state.metrics.registry is not server.app.state.metrics.registry
    assert b"foundry_e2e_request_latency_seconds_count 0.0" in other.state.metrics.render()


# --- the waiting queue -----------------------------------------------------------------------------


def test_full_waiting_queue_answers_429_with_retry_after() -> None:
    llm = LLMEngine(EngineConfig(max_num_seqs=1, max_model_len=256, num_device_blocks=64))
    app = create_app(llm, max_waiting=1, retry_after_s=2.0)
    with serve_in_thread(app) as url, StepGate(llm) as gate:
        body = {"model": MODEL, "prompt": "busy", "ignore_eos": True}
        engine = app.state.engine

        async def scenario() -> tuple[httpx.Response, ...]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as c:
                running = asyncio.create_task(c.post("/v1/completions", json={**body, "max_tokens": 200}))
                await until(lambda: engine.stats().num_waiting == 1)  # in the engine, held at the gate
                await gate.run_async(1)  # admitted: it runs, and no further step may happen
                await until(lambda: engine.stats().num_running == 1)
                waiting = asyncio.create_task(c.post("/v1/completions", json={**body, "max_tokens": 2}))
                await until(lambda: engine.num_waiting() == 1)
                refused = await c.post("/v1/completions", json={**body, "max_tokens": 2})
                gate.open()
                return refused, await running, await waiting

        refused, running, waiting = asyncio.run(scenario())
        assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
        err = refused.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["code"] == "queue_full"
        assert running.status_code == 200 and waiting.status_code == 200
        assert running.json()["usage"]["completion_tokens"] == 200
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert client.completions.create(model=MODEL, prompt="ok now", max_tokens=2).usage.completion_tokens
        assert "foundry_requests_rejected_total 1.0" in httpx.get(f"{url}/metrics").text


# --- a checkpoint directory as the model -------------------------------------------------------------


def test_serving_a_checkpoint_directory(tmp_path, offline: LLMEngine) -> None:
    from foundry.llm.checkpoint import save_checkpoint

    path = save_checkpoint(offline.model, offline.tokenizer, tmp_path / "my-model")
    app = create_app(LLMEngine(EngineConfig(model=str(path), max_model_len=256, num_device_blocks=64)))
    with serve_in_thread(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["my-model"]
        r = client.completions.create(
            model="my-model",
            prompt="same weights",
            max_tokens=6,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        with pytest.raises(openai.BadRequestError):
            client.completions.create(model=MODEL, prompt="x", max_tokens=2)
    want = offline.generate(["same weights"], SamplingParams(max_tokens=6, temperature=0, ignore_eos=True))[0]
    assert r.choices[0].text == want.text


@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_metrics_count_preemptions_and_swaps_under_memory_pressure(mode: str) -> None:
    # 10 device blocks of 16 tokens; four requests of 20 + 60 tokens need 20: someone must be preempted
    config = EngineConfig(
        max_num_seqs=4, max_model_len=128, num_device_blocks=10, num_host_blocks=32, preemption_mode=mode
    )
    llm = LLMEngine(config)
    app = create_app(llm)
    body = {"model": MODEL, "prompt": "x" * 20, "max_tokens": 60, "ignore_eos": True}
    with serve_in_thread(app) as url, StepGate(llm) as gate:

        async def main() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as c:
                posts = [asyncio.create_task(c.post("/v1/completions", json=body)) for _ in range(4)]
                # all four are in before any step runs: by construction they compete for the blocks
                await until(lambda: app.state.engine.num_waiting() == 4)
                gate.open()
                return await asyncio.gather(*posts)

        assert all(r.json()["usage"]["completion_tokens"] == 60 for r in asyncio.run(main()))
        values = {
            line.split()[0]: float(line.split()[1])
            for line in httpx.get(f"{url}/metrics").text.splitlines()
            if line.startswith("foundry_num_")
        }
    assert values["foundry_num_preemptions_total"] >= 1
    swapped = values["foundry_num_swapped_out_total"], values["foundry_num_swapped_in_total"]
    assert (swapped[0] >= 1 and swapped[1] >= 1) if mode == "swap" else swapped == (0, 0)
    assert values["foundry_num_requests_running"] == 0 and values["foundry_num_requests_swapped"] == 0


def test_prefix_caching_and_speculation_through_the_openai_api_and_metrics() -> None:
    """The same completion with both on and off (greedy), and their series on /metrics."""
    config = EngineConfig(max_num_seqs=4, max_model_len=256, num_device_blocks=64, enable_prefix_caching=True,
                          speculative_method="ngram", speculative_adaptive=False)
    prompt = "the same long system prompt, word for word, " * 4
    body = {"model": MODEL, "prompt": prompt, "max_tokens": 24, "temperature": 0, "ignore_eos": True}
    want = LLMEngine(CONFIG).generate([prompt], SamplingParams(max_tokens=24, temperature=0, ignore_eos=True))
    with serve_in_thread(create_app(LLMEngine(config))) as url:
        texts = [httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]["text"]
                 for _ in range(2)]  # the second finds the first's prompt blocks
        lines = httpx.get(f"{url}/metrics").text.splitlines()
        metrics = {line.split()[0]: float(line.split()[1]) for line in lines
                   if line.startswith(("foundry_prefix", "foundry_spec"))}
    assert texts == [want[0].text] * 2
    assert metrics["foundry_prefix_cache_hit_rate"] > 0.3 and metrics["foundry_prefix_cache_blocks"] > 0
    assert metrics["foundry_spec_decode_draft_tokens"] > 0
    assert 0 <= metrics["foundry_spec_decode_acceptance_rate"] <= 1
