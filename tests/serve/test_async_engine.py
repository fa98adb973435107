"""AsyncEngine: the engine stepped in one background thread, requests as asyncio streams."""

from __future__ import annotations

import asyncio
import threading

import pytest

from foundry.serve import EngineConfig, LLMEngine, SamplingParams
from foundry.serve.async_engine import AsyncEngine, EngineDeadError, QueueFullError
from foundry.serve.core import StepObserver
from tests.waiting import StepGate, until

CONFIG = EngineConfig(max_num_seqs=2, max_model_len=256, num_device_blocks=64)
GREEDY = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)


@pytest.fixture(scope="module")
def offline() -> LLMEngine:
    return LLMEngine(CONFIG)


def started(max_waiting: int = 64, llm: LLMEngine | None = None) -> AsyncEngine:
    engine = AsyncEngine(llm or LLMEngine(CONFIG), max_waiting=max_waiting)
    engine.start()
    return engine


def assert_clean(engine: AsyncEngine) -> None:
    bm = engine.engine.block_manager
    assert bm.num_free_device_blocks == bm.device.num_blocks
    bm.check_invariants()


def test_concurrent_streams_match_the_offline_engine(offline: LLMEngine) -> None:
    prompts = ["alpha", "beta gamma", "delta", "epsilon zeta eta", "theta"]
    want = [o.text for o in offline.generate(prompts, GREEDY)]
    engine = started()

    async def one(i: int, prompt: str) -> tuple[str, list]:
        outs = [o async for o in engine.generate(f"r{i}", prompt, GREEDY)]
        return outs[-1].text, outs

    async def main() -> list:
        return await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))

    try:
        results = asyncio.run(main())
    finally:
        engine.shutdown()
    assert [text for text, _ in results] == want
    for _, outs in results:
        assert outs[-1].finished and not any(o.finished for o in outs[:-1])
        assert sum(len(o.new_token_ids) for o in outs) == 8 == len(outs[-1].output_token_ids)
        assert "".join(o.new_text for o in outs) == outs[-1].text
    assert_clean(engine)


def test_add_samples_streams_each_sample_of_one_prompt(offline: LLMEngine) -> None:
    params = SamplingParams(max_tokens=8, temperature=1.0, seed=3, ignore_eos=True, n=3)
    want = [o.output_token_ids for o in offline.generate(["alpha"], params)]
    engine = started()

    async def main() -> list:
        with pytest.raises(ValueError, match="^n:"):
            await engine.add_request("one", "alpha", params)  # one stream cannot carry three samples
        streams = await engine.add_samples("g", "alpha", params)
        assert [s.request_id for s in streams] == ["g-0", "g-1", "g-2"]
        return [(await _last(s)).output_token_ids for s in streams]

    try:
        got = asyncio.run(main())
    finally:
        engine.shutdown()
    assert got == want
    prompt_len = len(engine.engine.tokenizer.encode("alpha"))
    assert sum(r.num_prefill_tokens for r in engine.engine.iteration_records) == prompt_len  # computed once
    assert_clean(engine)


def test_rejected_request_raises_the_engines_error_naming_the_field() -> None:
    llm = LLMEngine(CONFIG)
    engine = started(llm=llm)

    async def main(gate: StepGate) -> None:
        with pytest.raises(ValueError, match="^temperature:"):
            await engine.add_request("bad", "x", SamplingParams(temperature=-1.0))
        with pytest.raises(ValueError, match="^prompt:"):
            await engine.add_request("empty", [], GREEDY)
        stream = await engine.add_request("dup", "x", GREEDY)  # held at the gate: it cannot finish
        with pytest.raises(ValueError, match="^request_id:"):
            await engine.add_request("dup", "x", GREEDY)
        gate.open()
        assert (await _last(stream)).finished

    try:
        with StepGate(llm) as gate:
            asyncio.run(main(gate))
    finally:
        engine.shutdown()


async def _last(stream):
    return [out async for out in stream][-1]


def test_cancel_and_early_exit_abort_and_free_blocks() -> None:
    llm = LLMEngine(CONFIG)
    engine = started(llm=llm)
    long = SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True)

    async def main(gate: StepGate) -> None:
        stream = await engine.add_request("a", "cancel me", long)
        await gate.run_async(1)
        await stream.__anext__()
        await gate.held_async()  # the engine waits to take a second step
        stream.cancel()
        gate.allow(1)  # the step under way ends; the abort applies at the boundary after it
        await until(lambda: engine.stats().num_aborted == 1)
        generator = engine.generate("b", "leave early", long)
        first = asyncio.create_task(anext(generator))
        await gate.run_async(1)
        assert not (await first).finished
        await gate.held_async()
        await generator.aclose()  # what leaving an `async for` early leads to: its finally aborts
        gate.allow(1)
        await until(lambda: engine.stats().num_aborted == 2)
        await until(lambda: engine.stats().device_kv_usage == 0.0)
        assert gate.steps == 4

    try:
        with StepGate(llm) as gate:
            asyncio.run(main(gate))
    finally:
        engine.shutdown()
    assert engine.stats().num_finished == 0
    assert_clean(engine)


def test_waiting_queue_is_bounded() -> None:
    llm = LLMEngine(CONFIG)  # max_num_seqs=2: two run, two may wait, the fifth is refused
    engine = started(max_waiting=2, llm=llm)
    long = SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True)

    async def main(gate: StepGate) -> None:
        holding, release = threading.Event(), threading.Event()
        hold = asyncio.create_task(engine.call(lambda e: (holding.set(), release.wait())))
        # once the engine thread runs the call it takes nothing in until released; waiting for that
        # (not just queueing the call) matters: the thread may be past its calls, about to take requests in
        assert await asyncio.to_thread(holding.wait, 60)
        adds = [asyncio.create_task(engine.add_request(f"run{i}", "busy", long)) for i in range(2)]
        await until(lambda: engine.num_waiting() == 2)
        release.set()
        await hold
        streams = [await add for add in adds]  # taken in together, before the first step
        await gate.run_async(1)  # both admitted; the engine is then held before its second step
        await until(lambda: engine.stats().num_running == 2)
        adds = [asyncio.create_task(engine.add_request(f"wait{i}", "busy", long)) for i in range(2)]
        await until(lambda: engine.num_waiting() == 2)  # handed over, not yet taken in
        with pytest.raises(QueueFullError) as e:
            await engine.add_request("refused", "busy", long)
        assert e.value.retry_after == engine.retry_after_s
        await gate.run_async(1)  # after this step the engine takes both in: they wait in its queue
        streams += [await add for add in adds]
        assert engine.num_waiting() == 2 and engine.stats().num_waiting == 2
        streams[0].cancel()  # a running request leaves, a waiting one is admitted, a slot frees up
        await gate.run_async(2)  # the step under way, then one that admits a waiting request
        await until(lambda: engine.num_waiting() == 1)
        admitted = asyncio.create_task(engine.add_request("admitted", "busy", long))
        await gate.run_async(1)
        streams.append(await admitted)
        for s in streams:
            s.cancel()
        assert gate.steps == 5  # no request came near its 200 tokens

    try:
        with StepGate(llm) as gate:
            asyncio.run(main(gate))
    finally:
        engine.shutdown()
    assert engine.stats().num_finished == 0
    assert_clean(engine)


def test_shutdown_fails_open_streams_and_refuses_new_requests() -> None:
    llm = LLMEngine(CONFIG)
    engine = started(llm=llm)
    long = SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True)

    async def main(gate: StepGate) -> None:
        stream = await engine.add_request("open", "x", long)
        await gate.run_async(1)
        await stream.__anext__()
        await gate.held_async()  # the engine is held before its second step
        stopping = asyncio.create_task(asyncio.to_thread(engine.shutdown))
        await until(lambda: not engine.is_alive)  # shutdown asked for ...
        gate.allow(1)  # ... the step under way ends, and the thread stops after it
        await stopping
        with pytest.raises(EngineDeadError):
            async for _ in stream:
                pass
        with pytest.raises(EngineDeadError):
            await engine.add_request("late", "x", long)
        assert gate.steps == 2

    with StepGate(llm) as gate:
        asyncio.run(main(gate))
    assert not engine.is_alive and engine.error is None
    assert engine.stats().num_finished == 0
    assert_clean(engine)


def test_a_failing_step_stops_the_thread_and_fails_every_stream() -> None:
    llm = LLMEngine(CONFIG)
    engine = AsyncEngine(llm)

    class DeviceLostOnStep3(StepObserver):
        calls = 0

        def step_starting(self) -> None:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("device lost")

    async def main() -> None:
        stream = await engine.add_request("x", "x", SamplingParams(max_tokens=50, ignore_eos=True))
        with pytest.raises(EngineDeadError, match="device lost"):
            async for _ in stream:
                pass

    with llm.core.observe(DeviceLostOnStep3()):  # attached before the engine thread starts
        engine.start()
        asyncio.run(main())
        engine.shutdown()
    assert isinstance(engine.error, RuntimeError) and not engine.is_alive


def test_call_runs_on_the_engine_thread_between_steps() -> None:
    llm = LLMEngine(CONFIG)
    engine = started(llm=llm)

    async def main(gate: StepGate) -> None:
        stream = await engine.add_request("busy", "x", SamplingParams(max_tokens=30, ignore_eos=True))
        await gate.run_async(2)
        await gate.held_async()  # held inside the third step: a call now must wait for its end
        name = asyncio.create_task(engine.call(lambda e: threading.current_thread().name))
        steps = asyncio.create_task(engine.call(lambda e: e.stats().num_steps))
        # let both tasks queue their calls before the step is granted: without this yield the step
        # could run first, the engine would then hold at step 4's gate with the calls unrun, and wait
        await asyncio.sleep(0)
        await gate.run_async(1)
        assert await name == "foundry-engine"
        assert await steps == 3 == gate.steps  # it ran after step 3, before step 4 (not yet allowed)
        failing = asyncio.create_task(engine.call(lambda e: 1 / 0))
        gate.open()
        with pytest.raises(ZeroDivisionError):
            await failing
        assert (await _last(stream)).finished  # the engine kept serving around the calls

    try:
        with StepGate(llm) as gate:
            asyncio.run(main(gate))
    finally:
        engine.shutdown()
