"""`SamplingParams(n=k)`: k samples of one prompt, its prefill computed once and its KV blocks shared."""

import dataclasses

import pytest

from foundry.serve import SamplingParams
from foundry.serve.policies import FCFSPolicy, MLFQPolicy, VLLMPolicy
from foundry.serve.sample_groups import SampleGroups

PROMPT = list(range(1, 11))  # 10 tokens: 2 full blocks of 4 and a partial one
SEEDED = SamplingParams(max_tokens=6, temperature=1.0, seed=7, ignore_eos=True)
GREEDY = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)


def singles(make_engine, params, n, prompt=PROMPT):
    """What n independent requests give: sample j with seed + j."""
    engine = make_engine(block_size=4)
    ps = [dataclasses.replace(params, seed=None if params.seed is None else params.seed + j)
          for j in range(n)]
    return [o.output_token_ids for o in engine.generate([prompt] * n, ps)]


def used_blocks(engine):
    bm = engine.block_manager
    return bm.device.num_blocks - bm.num_free_device_blocks


def test_n_samples_allocate_the_prompts_blocks_once(make_engine):
    engine = make_engine(block_size=4, num_device_blocks=64, check_invariants=True)
    engine.add_request("g", PROMPT, dataclasses.replace(SEEDED, n=4))
    outs = engine.step()  # the prefill step: the leader computes the prompt, all four sample from it
    assert sorted(o.request_id for o in outs) == ["g-0", "g-1", "g-2", "g-3"]
    assert used_blocks(engine) == 3 and engine.iteration_records[0].num_prefill_tokens == 10
    tables = {rid: engine.block_manager.block_ids(rid) for rid in ("g-0", "g-1", "g-2", "g-3")}
    assert len({tuple(t) for t in tables.values()}) == 1
    assert all(engine.block_manager.device.refcount[b] == 4 for b in tables["g-0"])

    independent = make_engine(block_size=4, num_device_blocks=64)
    for j in range(4):
        independent.add_request(f"r{j}", PROMPT, dataclasses.replace(SEEDED, seed=7 + j))
    independent.step()
    assert used_blocks(independent) == 12 and independent.iteration_records[0].num_prefill_tokens == 40

    engine.step()  # the leader fills the shared partial block in place, the other three copy it first
    assert used_blocks(engine) == 3 + 3
    while engine.has_unfinished_requests():
        engine.step()
    assert used_blocks(engine) == 0 and not engine.block_manager.tables


def test_greedy_samples_equal_the_single_request(make_engine):
    engine = make_engine(block_size=4, check_invariants=True)
    outs = engine.generate([PROMPT], dataclasses.replace(GREEDY, n=2))
    [single] = singles(make_engine, GREEDY, 1)
    assert [o.request_id for o in outs] == ["generate-1-0-0", "generate-1-0-1"]
    assert outs[0].output_token_ids == outs[1].output_token_ids == single
    assert outs[0].text == outs[1].text and outs[0].prompt_token_ids == PROMPT


def test_seeded_sample_j_equals_a_single_request_with_seed_plus_j(make_engine):
    engine = make_engine(block_size=4, check_invariants=True)
    params = dataclasses.replace(SEEDED, n=3, return_output_logprobs=True)
    outs = engine.generate([PROMPT, PROMPT[:5]], params)
    assert [o.output_token_ids for o in outs[:3]] == singles(make_engine, SEEDED, 3)
    assert [o.output_token_ids for o in outs[3:]] == singles(make_engine, SEEDED, 3, PROMPT[:5])
    assert len({tuple(o.output_token_ids) for o in outs[:3]}) > 1  # the samples differ
    assert all(len(o.output_logprobs) == 6 for o in outs)


def test_n_errors_and_ids(make_engine):
    engine = make_engine(block_size=4)
    with pytest.raises(ValueError, match="^n:"):
        engine.add_request("a", PROMPT, SamplingParams(n=0))
    engine.add_request("a", PROMPT, dataclasses.replace(SEEDED, n=2))
    for taken in ("a", "a-0", "a-1"):  # the request id and its sample ids are in use
        with pytest.raises(ValueError, match="^request_id"):
            engine.add_request(taken, PROMPT, SEEDED)
    engine.add_request("b", PROMPT, SEEDED)
    with pytest.raises(ValueError, match="^request_id: 'b'"):
        engine.add_request("b", PROMPT, dataclasses.replace(SEEDED, n=2))
    assert engine.stats().num_waiting == 3  # a-0, a-1 (waiting for a-0's prompt), b
    with pytest.raises(ValueError, match="^request_id: 'a-0' has samples waiting"):
        engine.migrate_out("a-0")
    engine.abort_request("a")  # all of its samples
    assert engine.stats().num_aborted == 2 and engine.stats().num_waiting == 1
    engine.add_request("a-0", PROMPT, SEEDED)  # free again


def test_aborting_one_sample_frees_only_its_own_blocks(make_engine):
    engine = make_engine(block_size=4, check_invariants=True)
    engine.add_request("g", PROMPT, dataclasses.replace(SEEDED, n=3))
    engine.step()
    engine.step()  # every sample has its own copy of the last block now
    bm = engine.block_manager
    shared, own = bm.block_ids("g-0")[:2], bm.block_ids("g-1")[2]
    engine.abort_request("g-1")
    assert all(bm.device.refcount[b] == 2 for b in shared) and bm.device.refcount[own] == 0
    outs = {}
    while engine.has_unfinished_requests():
        outs.update((o.request_id, o) for o in engine.step() if o.finished)
    want = singles(make_engine, SEEDED, 3)
    assert sorted(outs) == ["g-0", "g-2"] and outs["g-2"].output_token_ids == want[2]
    assert not bm.tables and bm.num_free_device_blocks == bm.device.num_blocks


@pytest.mark.parametrize("who", ["g-0", "g-1"])
def test_aborting_a_sample_before_the_prompt_is_computed(make_engine, who):
    # the prompt takes three chunked steps; abort the leader (the next sample takes over) or a waiting one
    engine = make_engine(block_size=4, max_num_batched_tokens=4, check_invariants=True)
    engine.add_request("g", PROMPT, dataclasses.replace(SEEDED, n=3))
    engine.step()
    engine.abort_request(who)
    outs = {}
    while engine.has_unfinished_requests():
        outs.update((o.request_id, o) for o in engine.step() if o.finished)
    want = singles(make_engine, SEEDED, 3)
    left = [j for j in range(3) if f"g-{j}" != who]
    assert sorted(outs) == [f"g-{j}" for j in left]
    assert [outs[f"g-{j}"].output_token_ids for j in left] == [want[j] for j in left]
    assert not engine.block_manager.tables


POLICIES = {"vllm-recompute": lambda: VLLMPolicy(8, 64), "vllm-swap": lambda: VLLMPolicy(8, 64, "swap"),
            "fcfs": lambda: FCFSPolicy(8, 64),
            # a quantum far below any step (each job is demoted every step, whatever the load): samples
            # leave the batch often and, once they hold their blocks alone, are swapped
            "mlfq-swap": lambda: MLFQPolicy(8, 64, base_quantum=1e-9, memory_mode="reactive-swap")}


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("num_device_blocks", [3, 7])
def test_groups_under_memory_pressure_finish_with_the_pool_clean(make_engine, tiny_ckpt, policy,
                                                                 num_device_blocks):
    # 3 blocks fit exactly one sample (prompt 6 + 6 tokens): the samples waiting for their turn pin the
    # prompt's blocks, so the engine must release them (or the leader could never run again)
    from foundry.serve import EngineConfig, LLMEngine

    prompt = PROMPT[:6]
    cfg = EngineConfig(model=tiny_ckpt, block_size=4, num_device_blocks=num_device_blocks,
                       num_host_blocks=8, max_num_seqs=8, max_num_batched_tokens=64)
    engine = LLMEngine(cfg, policy=POLICIES[policy](), check_invariants=True)
    outs = engine.generate([prompt, PROMPT[4:10]], dataclasses.replace(SEEDED, n=3))
    assert [o.output_token_ids for o in outs[:3]] == singles(make_engine, SEEDED, 3, prompt)
    assert [o.output_token_ids for o in outs[3:]] == singles(make_engine, SEEDED, 3, PROMPT[4:10])
    bm = engine.block_manager
    assert not bm.tables and bm.num_free_device_blocks == num_device_blocks and bm.host_usage == 0
    stats = engine.stats()
    if policy != "fcfs":
        assert stats.num_preemptions > 0, "the test must actually preempt"
    if policy == "mlfq-swap":
        assert stats.num_swapped_out > 0 and stats.num_swapped_in > 0


def test_sample_groups_bookkeeping():
    groups = SampleGroups()
    groups.add("g", {"g-0": "r0", "g-1": "r1", "g-2": "r2"})
    assert groups.is_taken("g") and groups.is_taken("g-2") and not groups.is_taken("g-3")
    assert groups.num_waiting == 2 and groups.sample_ids("g") == ["g-0", "g-1", "g-2"]
    assert groups.promote("g-0") == "r1" and list(groups.waiting) == ["g-1"]  # g-1 leads g-2 now
    groups.forget("g-0")
    assert groups.take_waiting("g-2") == "r2" and not groups.waiting and groups.take_waiting("g-2") is None
    groups.forget("g-2")
    groups.forget("g-1")
    assert not groups.is_taken("g") and groups.sample_ids("g") == []
