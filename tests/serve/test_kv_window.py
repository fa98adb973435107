"""A StreamingLLM-style KV window: sinks + recent tokens kept, blocks between freed, memory bounded."""

import dataclasses

import pytest

from foundry.serve import SamplingParams
from foundry.serve.config import EngineConfig

GREEDY = SamplingParams(max_tokens=60, temperature=0.0, ignore_eos=True)
PROMPT = list(range(1, 41))


def test_a_window_longer_than_the_request_changes_nothing(make_engine):
    want = make_engine(block_size=4).generate([PROMPT], GREEDY)[0].output_token_ids
    engine = make_engine(block_size=4, kv_window_tokens=200, check_invariants=True)
    assert engine.generate([PROMPT], GREEDY)[0].output_token_ids == want
    assert engine.block_manager.num_evicted_tokens("x") == 0


def test_the_window_frees_old_blocks_and_bounds_what_a_request_holds(make_engine):
    engine = make_engine(block_size=4, kv_window_tokens=16, kv_sink_tokens=4, max_num_batched_tokens=8,
                         check_invariants=True)
    bm = engine.block_manager
    engine.add_request("r", PROMPT, GREEDY)  # 40 + 60 tokens: 25 blocks without a window
    held = []
    while engine.has_unfinished_requests():
        engine.step()
        if "r" in bm.tables:
            held.append(bm.num_blocks("r"))
            assert bm.num_evicted_tokens("r") % 4 == 0
    assert max(held) <= bm.most_blocks_held(100, 8) == 1 + 6 + 1  # sinks, 16-token window + a step, partial
    assert bm.num_free_device_blocks == bm.device.num_blocks


def test_a_request_longer_than_the_pool_runs_under_a_window(make_engine):
    """100 tokens need 25 blocks; 12 are enough when only the sinks and 16 recent tokens stay."""
    with pytest.raises(ValueError, match="KV blocks"):
        make_engine(block_size=4, num_device_blocks=12).generate([PROMPT], GREEDY)
    engine = make_engine(block_size=4, num_device_blocks=12, kv_window_tokens=16, max_num_batched_tokens=8,
                         check_invariants=True)
    out = engine.generate([PROMPT], GREEDY)[0]
    assert len(out.output_token_ids) == 60


@pytest.mark.parametrize("policy", ["vllm", "mlfq", "srpt"])
def test_batches_swaps_samples_and_speculation_keep_the_accounting_right(make_engine, policy):
    prompts = [PROMPT[: 5 + 7 * i] for i in range(5)]
    params = [dataclasses.replace(GREEDY, max_tokens=20 + 9 * i, n=1 + i % 2) for i in range(5)]
    engine = make_engine(policy=policy, block_size=4, num_device_blocks=30, num_host_blocks=30,
                         kv_window_tokens=12, max_num_seqs=4, max_num_batched_tokens=16,
                         preemption_mode="swap", speculative_method="ngram", speculative_adaptive=False,
                         check_invariants=True)
    outs = engine.generate(prompts, params)
    assert [len(o.output_token_ids) for o in outs] == [p.max_tokens for p in params for _ in range(p.n)]
    assert not engine.block_manager.tables


def test_a_window_with_prefix_caching_or_fcfs_is_refused():
    with pytest.raises(ValueError, match="kv_window_tokens: not with enable_prefix_caching"):
        EngineConfig(kv_window_tokens=64, enable_prefix_caching=True)
    with pytest.raises(ValueError, match="kv_window_tokens: not with policy fcfs"):
        EngineConfig(kv_window_tokens=64, policy="fcfs")
