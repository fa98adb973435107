"""Run a workload open-loop against a target and measure what each request saw.

Each request is sent at its arrival time whether or not earlier ones have finished (open loop), with
``ignore_eos`` and ``max_tokens`` set to its target output length, and a prompt of random token ids of
its prompt length (ids 32..126 exist in every vocabulary this project loads: foundry-tiny's bytes and
any BPE's byte fallbacks). Two targets:

- ``HttpTarget``: an OpenAI-compatible server, via streaming ``/v1/completions``;
- ``InProcessTarget``: an ``LLMEngine`` in this process, through the same ``AsyncEngine`` the server uses.

``run_benchmark(workload, target)`` is the entry point other benchmarks (policy × rate sweeps) call.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from foundry.serve.bench.report import BenchResult, RequestRecord, summarize
from foundry.serve.bench.workloads import RequestSpec, Workload

PROMPT_TOKEN_RANGE = (32, 127)


@dataclass(frozen=True)
class HttpTarget:
    url: str  # e.g. http://127.0.0.1:8000
    model: str | None = None  # None: the first model /v1/models lists
    timeout_s: float = 600.0
    wait_s: float = 0.0  # wait up to this long for /health to answer 200 before starting

    def describe(self) -> str:
        return f"http {self.url}"


@dataclass(frozen=True)
class InProcessTarget:
    engine: Any  # an LLMEngine; the benchmark drives it from a background thread while it runs

    def describe(self) -> str:
        cfg = getattr(self.engine, "config", None)
        policy = getattr(cfg, "policy", None)
        return "in-process" + (f" policy={policy}" if policy else "")


def prompt_token_ids(workload: Workload, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    lo, hi = PROMPT_TOKEN_RANGE
    return [rng.integers(lo, hi, size=spec.prompt_len).tolist() for spec in workload.requests]


def run_benchmark(
    workload: Workload, target: HttpTarget | InProcessTarget, *, seed: int = 0, info: dict | None = None
) -> BenchResult:
    """Run ``workload`` against ``target`` and summarise (blocking; starts its own event loop)."""
    return asyncio.run(arun_benchmark(workload, target, seed=seed, info=info))


async def arun_benchmark(
    workload: Workload, target: HttpTarget | InProcessTarget, *, seed: int = 0, info: dict | None = None
) -> BenchResult:
    prompts = prompt_token_ids(workload, seed)
    if isinstance(target, HttpTarget):
        records = await _run_http(workload, prompts, target)
    elif isinstance(target, InProcessTarget):
        records = await _run_in_process(workload, prompts, target)
    else:
        raise TypeError(f"target: expected HttpTarget or InProcessTarget, got {type(target).__name__}")
    meta = {"workload": workload.name, "num_requests": len(workload), "target": target.describe()}
    return summarize(records, {**meta, **(info or {})})


async def _open_loop(workload: Workload, send) -> list[RequestRecord]:
    """Start ``send(i, spec, t0)`` for each request at its arrival time; wait for all of them."""
    t0 = time.perf_counter()
    tasks = []
    for i, spec in enumerate(workload.requests):
        delay = t0 + spec.arrival_time - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i, spec, t0)))
    return list(await asyncio.gather(*tasks))


# --- HTTP --------------------------------------------------------------------------------------------


async def _wait_healthy(client: Any, wait_s: float) -> None:
    import httpx

    deadline = time.monotonic() + wait_s
    while True:
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            if time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:
            return  # answered, but not healthy: let the requests report what happens
        await asyncio.sleep(0.1)


async def _resolve_model(client: Any, target: HttpTarget) -> str:
    if target.model is not None:
        return target.model
    return (await _model_cards(client))[0]["id"]


async def _model_cards(client: Any) -> list[dict[str, Any]]:
    r = await client.get("/v1/models")
    r.raise_for_status()
    return r.json()["data"]


def context_length(target: HttpTarget | InProcessTarget) -> int | None:
    """The target's context limit: the engine's, or the ``max_model_len`` the server's ``/v1/models``
    reports for the model (None when it reports none). Over HTTP it first waits ``target.wait_s``."""
    if isinstance(target, InProcessTarget):
        return int(target.engine.max_model_len)
    return asyncio.run(_http_max_model_len(target))


async def _http_max_model_len(target: HttpTarget) -> int | None:
    import httpx

    async with httpx.AsyncClient(base_url=target.url, timeout=target.timeout_s) as client:
        if target.wait_s > 0:
            await _wait_healthy(client, target.wait_s)
        cards = await _model_cards(client)
    card = next((c for c in cards if target.model in (None, c.get("id"))), {})
    value = card.get("max_model_len")
    return int(value) if isinstance(value, int) else None


async def _run_http(workload: Workload, prompts: list[list[int]], target: HttpTarget) -> list[RequestRecord]:
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=target.url, timeout=target.timeout_s, limits=limits) as client:
        if target.wait_s > 0:
            await _wait_healthy(client, target.wait_s)
        model = await _resolve_model(client, target)

        async def send(i: int, spec: RequestSpec, t0: float) -> RequestRecord:
            body = {
                "model": model,
                "prompt": prompts[i],
                "max_tokens": spec.output_len,
                "temperature": 0.0,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            rec = RequestRecord(spec.prompt_len, spec.output_len, time.perf_counter() - t0)
            chunks = 0
            try:
                async with client.stream("POST", "/v1/completions", json=body) as r:
                    if r.status_code != 200:
                        text = (await r.aread()).decode(errors="replace")
                        rec.error = f"HTTP {r.status_code}: {text[:200]}"
                        return rec
                    async for line in r.aiter_lines():
                        if not line.startswith("data: "):
                            continue
                        data = line[len("data: ") :]
                        if data == "[DONE]":
                            break
                        msg = json.loads(data)
                        if "error" in msg:
                            rec.error = str(msg["error"].get("message"))
                            return rec
                        if msg.get("choices"):
                            now = time.perf_counter() - t0
                            if rec.first_token_time is None:
                                rec.first_token_time = now
                            rec.finish_time = now
                            chunks += 1
                        if msg.get("usage"):
                            rec.num_output_tokens = int(msg["usage"]["completion_tokens"])
                if rec.num_output_tokens == 0:
                    rec.num_output_tokens = chunks  # a server that sends no usage: one chunk per token
            except httpx.HTTPError as e:
                rec.error = f"{type(e).__name__}: {e}"
            return rec

        return await _open_loop(workload, send)


# --- in-process --------------------------------------------------------------------------------------


async def _run_in_process(
    workload: Workload, prompts: list[list[int]], target: InProcessTarget
) -> list[RequestRecord]:
    from foundry.serve import SamplingParams
    from foundry.serve.async_engine import AsyncEngine

    engine = AsyncEngine(target.engine, max_waiting=max(1, len(workload)))
    run_id = uuid.uuid4().hex[:8]
    engine.start()
    try:

        async def send(i: int, spec: RequestSpec, t0: float) -> RequestRecord:
            rec = RequestRecord(spec.prompt_len, spec.output_len, time.perf_counter() - t0)
            params = SamplingParams(max_tokens=spec.output_len, temperature=0.0, ignore_eos=True)
            try:
                stream = await engine.add_request(f"bench-{run_id}-{i}", prompts[i], params)
                async for out in stream:
                    now = time.perf_counter() - t0
                    if out.new_token_ids and rec.first_token_time is None:
                        rec.first_token_time = now
                    rec.finish_time = now
                    rec.num_output_tokens = len(out.output_token_ids)
            except Exception as e:
                rec.error = f"{type(e).__name__}: {e}"
            return rec

        return await _open_loop(workload, send)
    finally:
        await asyncio.to_thread(engine.shutdown)
