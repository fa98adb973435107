"""Prefix caching: full blocks of earlier requests' identical prefixes are reused, outputs unchanged."""

import dataclasses
import itertools
import random

import pytest

from foundry.serve import SamplingParams
from foundry.serve.block_manager import BlockManager

GREEDY = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
SYSTEM = list(range(10, 50))  # 40 shared tokens: 5 full blocks of 8


def test_a_shared_prefix_is_computed_once_and_found_by_content(make_engine):
    engine = make_engine(block_size=8, num_device_blocks=64, enable_prefix_caching=True,
                         check_invariants=True)
    engine.generate([SYSTEM + [1, 2, 3]], GREEDY)
    first = engine.iteration_records[0].num_prefill_tokens
    engine.add_request("b", SYSTEM + [4, 5], GREEDY)
    assert engine.core.requests["b"].num_computed_tokens == 40  # the 5 cached blocks, taken at admission
    engine.step()
    assert (first, engine.iteration_records[-1].num_prefill_tokens) == (43, 2)
    stats = engine.stats()
    assert stats.prefix_cache_hit_rate == pytest.approx(40 / (43 + 42)) and stats.num_cached_blocks >= 5
    engine.add_request("c", [99] + SYSTEM, GREEDY)  # same tokens, other position: no hit
    assert engine.core.requests["c"].num_computed_tokens == 0


def test_a_wholly_cached_prompt_still_computes_its_last_token(make_engine):
    engine = make_engine(block_size=8, num_device_blocks=64, enable_prefix_caching=True)
    a = engine.generate([SYSTEM], GREEDY)[0]
    b = engine.generate([SYSTEM], GREEDY)[0]
    assert engine.iteration_records[-8].num_prefill_tokens == 8  # 4 cached blocks, the 5th recomputed
    assert a.output_token_ids == b.output_token_ids


def _workload(seed: int, n: int = 24):
    rng = random.Random(seed)
    prefixes = [SYSTEM, list(range(60, 84)), []]
    prompts = [rng.choice(prefixes) + [rng.randrange(1, 250) for _ in range(rng.randrange(1, 20))]
               for _ in range(n)]
    prompts += prompts[:4]  # whole prompts again
    params = [dataclasses.replace(GREEDY, max_tokens=rng.randrange(1, 12)) for _ in prompts]
    return prompts, params


def _virtual_clock():
    ticks = itertools.count()
    return lambda: next(ticks) * 1e-4


@pytest.mark.parametrize("policy", ["vllm", "fcfs", "mlfq", "srpt"])
@pytest.mark.parametrize("blocks", [12, 64])  # 12: preemption, swaps and recompute under pressure
def test_greedy_outputs_are_identical_with_caching_on_and_off(make_engine, policy, blocks):
    prompts, params = _workload(seed=blocks)
    opts = dict(policy=policy, block_size=8, num_device_blocks=blocks, num_host_blocks=16, max_num_seqs=4,
                max_num_batched_tokens=32, preemption_mode="swap")
    # on a virtual clock (0.1 ms per reading): mlfq's quanta are times, and on the wall clock a loaded
    # machine changes its schedule and with it what stays cached (a hit rate of 0 was seen under load)
    off = make_engine(**opts, clock=_virtual_clock())
    on = make_engine(**opts, enable_prefix_caching=True, check_invariants=True, clock=_virtual_clock())
    for i in range(0, len(prompts), 7):  # in waves: a later wave finds what earlier ones computed
        want = [o.output_token_ids for o in off.generate(prompts[i:i + 7], params[i:i + 7])]
        assert [o.output_token_ids for o in on.generate(prompts[i:i + 7], params[i:i + 7])] == want
    assert on.stats().prefix_cache_hit_rate > (0.2 if blocks == 64 else 0.0)  # a small pool evicts
    bm = on.block_manager
    assert not bm.tables and bm.num_free_device_blocks == blocks  # cached blocks wait on the free list


def test_n_samples_share_a_cached_prefix(make_engine):
    params = dataclasses.replace(GREEDY, n=3)
    off = make_engine(block_size=8, num_device_blocks=64)
    on = make_engine(block_size=8, num_device_blocks=64, enable_prefix_caching=True, check_invariants=True)
    for engine in (off, on):
        engine.generate([SYSTEM + [7]], GREEDY)
    want = [o.output_token_ids for o in off.generate([SYSTEM + [1, 2]], params)]
    assert [o.output_token_ids for o in on.generate([SYSTEM + [1, 2]], params)] == want


def test_the_pool_reuses_the_least_recently_freed_cached_block_and_forgets_it():
    bm = BlockManager(4, 3, prefix_caching=True)
    tokens = list(range(12))
    bm.allocate("a", 12)
    bm.register_computed("a", tokens, [], 12)
    assert bm.prefix_cache.num_cached_blocks == 3
    bm.free("a")  # cached, free: still findable
    assert bm.acquire_cached("b", tokens + [1]) == 12 and bm.num_free_device_blocks == 0
    bm.free("b")
    bm.allocate("c", 4)  # takes the least recently freed block: the first of the chain
    assert bm.prefix_cache.num_cached_blocks == 2
    assert bm.acquire_cached("d", tokens + [1]) == 0  # the chain starts at the evicted block
    bm.check_invariants()
