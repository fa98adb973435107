"""Greedy outputs do not depend on batching, chunk size, preemption or swapping.

The oracle is a plain dense greedy loop over the model (no cache, one request at a time). Block
accounting invariants are checked after every engine step under the same random workloads.
"""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundry.llm import AttentionMetadata, load_model
from foundry.serve import EngineConfig, LLMEngine, SamplingParams

_oracle_cache: dict[tuple, list[int]] = {}


def dense_greedy(model, prompt: list[int], n: int) -> list[int]:
    key = (tuple(prompt), n)
    if key not in _oracle_cache:
        ids = list(prompt)
        with torch.no_grad():
            for _ in range(n):
                meta = AttentionMetadata.dense([len(ids)])
                h = model(torch.tensor(ids), torch.arange(len(ids)), None, meta)
                ids.append(int(model.compute_logits(h[-1:]).argmax()))
        _oracle_cache[key] = ids[len(prompt):]
    return _oracle_cache[key]


def run_workload(engine: LLMEngine, requests, arrivals, aborts=()):
    """requests: [(prompt, max_tokens)]; arrivals[i]: step at which request i is added."""
    finished = {}
    step = 0
    pending = sorted(range(len(requests)), key=lambda i: arrivals[i])
    while pending or engine.has_unfinished_requests():
        while pending and arrivals[pending[0]] <= step:
            i = pending.pop(0)
            prompt, max_tokens = requests[i]
            engine.add_request(f"r{i}", prompt, SamplingParams(max_tokens=max_tokens, temperature=0.0,
                                                                ignore_eos=True))
        if step in aborts and engine.has_unfinished_requests():
            engine.abort_request(sorted(engine.core.requests)[0])
        for out in engine.step():
            if out.finished:
                finished[out.request_id] = out.output_token_ids
        engine.block_manager.check_invariants()
        step += 1
        assert step < 5000, "engine made no progress"
    bm = engine.block_manager
    assert bm.num_free_device_blocks == bm.device.num_blocks and bm.num_free_host_blocks == bm.host.num_blocks
    return finished


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 6))
    requests = [(draw(st.lists(st.integers(0, 255), min_size=1, max_size=30)), draw(st.integers(1, 12)))
                for _ in range(n)]
    arrivals = [draw(st.integers(0, 6)) for _ in range(n)]
    block_size = draw(st.sampled_from([1, 2, 4, 8]))
    biggest = max(len(p) + m for p, m in requests)
    min_blocks = -(-biggest // block_size)
    cfg = dict(
        policy=draw(st.sampled_from(["vllm", "fcfs"])),
        preemption_mode=draw(st.sampled_from(["recompute", "swap"])),
        block_size=block_size,
        num_device_blocks=min_blocks + draw(st.integers(0, min_blocks)),
        num_host_blocks=draw(st.integers(0, 2 * min_blocks)),
        max_num_seqs=draw(st.integers(1, 6)),
        max_num_batched_tokens=draw(st.integers(1, 48)),
    )
    return requests, arrivals, cfg


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workloads())
def test_greedy_outputs_are_invariant(tiny_ckpt, workload):
    requests, arrivals, cfg = workload
    engine = LLMEngine(EngineConfig(model=tiny_ckpt, **cfg))
    finished = run_workload(engine, requests, arrivals)
    for i, (prompt, max_tokens) in enumerate(requests):
        assert finished[f"r{i}"] == dense_greedy(engine.model, prompt, max_tokens), (i, cfg)


@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_memory_pressure_preempts_yet_outputs_are_unchanged(tiny_ckpt, mode):
    model, _, _ = load_model(tiny_ckpt)
    requests = [([7 * i % 256 + 1] * (5 + 3 * i), 20) for i in range(6)]
    engine = LLMEngine(EngineConfig(model=tiny_ckpt, block_size=2, num_device_blocks=24, num_host_blocks=64,
                                    preemption_mode=mode, max_num_seqs=6, max_num_batched_tokens=16))
    finished = run_workload(engine, requests, [0] * 6)
    stats = engine.stats()
    assert stats.num_preemptions > 0
    if mode == "swap":
        assert stats.num_swapped_out > 0 and stats.num_swapped_in == stats.num_swapped_out
    for i, (prompt, n) in enumerate(requests):
        assert finished[f"r{i}"] == dense_greedy(model, prompt, n)


def test_aborts_under_random_workload_keep_accounting_clean(tiny_ckpt):
    requests = [([i + 1] * (3 + i), 10) for i in range(8)]
    engine = LLMEngine(EngineConfig(model=tiny_ckpt, block_size=4, num_device_blocks=12,
                                    preemption_mode="swap", num_host_blocks=8, max_num_seqs=4))
    finished = run_workload(engine, requests, [i // 2 for i in range(8)], aborts={2, 5, 9})
    assert len(finished) == 8 - engine.stats().num_aborted


@pytest.mark.parametrize("keep_kv", [True, False])
def test_migrating_requests_between_engines_keeps_greedy_outputs(tiny_ckpt, keep_kv):
    model, _, _ = load_model(tiny_ckpt)
    requests = [([3 * i + 1] * (4 + 5 * i), 12) for i in range(4)]
    a = LLMEngine(EngineConfig(model=tiny_ckpt, block_size=4, num_device_blocks=12, num_host_blocks=20,
                               preemption_mode="swap", max_num_batched_tokens=8))
    b = LLMEngine(EngineConfig(model=tiny_ckpt, block_size=4, num_device_blocks=40))
    for i, (prompt, n) in enumerate(requests):
        a.add_request(f"r{i}", prompt, SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True))
    finished = {}
    for _ in range(10):  # memory pressure: some decoding on device, some swapped out mid-prompt
        for out in a.step():
            finished[out.request_id] = out
    where = {rid: a.core.requests[rid].kv_location.value for rid in ("r1", "r2", "r3")}
    assert where == {"r1": "device", "r2": "host", "r3": "host"} and a.core.requests["r3"].is_prefilling
    for rid in ("r1", "r2", "r3"):
        b.migrate_in(a.migrate_out(rid, keep_kv=keep_kv))
    a.block_manager.check_invariants()
    b.block_manager.check_invariants()
    for engine in (a, b):
        while engine.has_unfinished_requests():
            for out in engine.step():
                finished[out.request_id] = out
            engine.block_manager.check_invariants()
    for i, (prompt, n) in enumerate(requests):
        out = finished[f"r{i}"]
        assert out.finished and out.output_token_ids == dense_greedy(model, prompt, n)
        assert out.text == a.tokenizer.decode(out.output_token_ids)
