"""Policies on plain request state, no torch: budgets, admission, preemption order, swap choices.

`toy_step` plays the engine loop without a model (every caught-up request gets token 0), which is
all a policy can observe.
"""

import subprocess
import sys

import pytest

from foundry.serve.block_manager import BlockManager
from foundry.serve.memory_plan import apply_decision
from foundry.serve.policies import FCFSPolicy, VLLMPolicy
from foundry.serve.sampling_params import SamplingParams
from foundry.serve.sequence import KVLocation, Sequence
from tests.serve.policy_driver import emit_placeholder_tokens


def snapshot(bm):
    return (list(bm.device.free), list(bm.host.free), list(bm.device.refcount),
            {r: (list(t.blocks), t.num_tokens, t.location) for r, t in bm.tables.items()})


def seq(rid: str, prompt: int, max_tokens: int, t: float = 0.0) -> Sequence:
    return Sequence(rid, [1] * prompt, SamplingParams(max_tokens=max_tokens), arrival_time=t)


def toy_step(policy, bm, now=0.0):
    before = snapshot(bm)
    decision = policy.schedule(now, bm)
    assert snapshot(bm) == before, "schedule() must only read the block manager"
    apply_decision(decision, bm)
    emit_placeholder_tokens(decision, policy, bm, now)
    policy.update(decision, now, 0.01)
    bm.check_invariants()
    return decision


def test_policies_import_without_torch():
    code = ("import sys; import foundry.serve.policies, foundry.serve.memory_plan, foundry.serve.sequence; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_vllm_chunks_prefill_within_token_budget_and_runs_running_first():
    bm = BlockManager(block_size=4, num_device_blocks=100)
    p = VLLMPolicy(max_num_seqs=8, max_num_batched_tokens=10)
    a, b = seq("a", 25, 3), seq("b", 4, 3)
    p.add(a, 0.0)
    p.add(b, 0.0)
    d = toy_step(p, bm)
    assert [(i.seq.request_id, i.num_tokens) for i in d.scheduled] == [("a", 10)]
    d = toy_step(p, bm)
    assert [(i.seq.request_id, i.num_tokens) for i in d.scheduled] == [("a", 10)]
    d = toy_step(p, bm)  # a's last 5 prompt tokens, then b's whole prompt fits the remaining 5
    assert [(i.seq.request_id, i.num_tokens) for i in d.scheduled] == [("a", 5), ("b", 4)]
    assert a.num_output_tokens == 1 and b.num_output_tokens == 1
    d = toy_step(p, bm)
    assert [(i.seq.request_id, i.num_tokens) for i in d.scheduled] == [("a", 1), ("b", 1)]


def test_vllm_respects_max_num_seqs():
    bm = BlockManager(block_size=4, num_device_blocks=100)
    p = VLLMPolicy(max_num_seqs=2, max_num_batched_tokens=100)
    for i in range(4):
        p.add(seq(f"r{i}", 3, 5), 0.0)
    d = toy_step(p, bm)
    assert [i.seq.request_id for i in d.scheduled] == ["r0", "r1"]


def test_vllm_preempts_newest_by_recompute_and_readmits_it_first():
    bm = BlockManager(block_size=2, num_device_blocks=6)
    p = VLLMPolicy(max_num_seqs=4, max_num_batched_tokens=100)
    old, new = seq("old", 4, 8), seq("new", 4, 8)  # 12 tokens = all 6 blocks each
    p.add(old, 0.0)
    p.add(new, 1.0)
    toy_step(p, bm)  # both prefilled: 2 + 2 blocks, 1 token each out
    toy_step(p, bm)  # both decode into a 3rd block each: 6 blocks in use
    assert bm.num_free_device_blocks == 0
    toy_step(p, bm)
    d = toy_step(p, bm)  # 'old' needs a 4th block: 'new' (the newest) is dropped
    assert d.recompute == [new] and [i.seq for i in d.scheduled] == [old]
    assert new.kv_location is KVLocation.NONE and new.num_computed_tokens == 0 and new.num_preemptions == 1
    assert p.waiting[0] is new
    while not old.is_finished:
        toy_step(p, bm)
    d = toy_step(p, bm)  # 'new' recomputes prompt + its outputs in one go
    assert d.scheduled[0].seq is new and d.scheduled[0].num_tokens == 7  # 4 prompt + 3 outputs
    assert new.num_output_tokens == 4 and new.num_computed_tokens == 7


def test_vllm_swap_mode_swaps_out_and_back_in_before_new_requests():
    bm = BlockManager(block_size=2, num_device_blocks=6, num_host_blocks=6)
    p = VLLMPolicy(max_num_seqs=4, max_num_batched_tokens=100, preemption_mode="swap")
    old, new, late = seq("old", 4, 6), seq("new", 4, 10), seq("late", 2, 2)
    p.add(old, 0.0)
    p.add(new, 1.0)
    for _ in range(3):
        toy_step(p, bm)
    d = toy_step(p, bm)
    assert d.swap_out == [new] and new.kv_location is KVLocation.HOST
    computed = new.num_computed_tokens
    p.add(late, 2.0)
    while not old.is_finished:
        d = toy_step(p, bm)
        assert late not in [i.seq for i in d.scheduled] or new.kv_location is KVLocation.DEVICE
    d = toy_step(p, bm)
    assert d.swap_in == [new] and new.num_computed_tokens == computed + 1


def test_vllm_swap_mode_falls_back_to_recompute_when_host_is_full():
    bm = BlockManager(block_size=2, num_device_blocks=6, num_host_blocks=1)
    p = VLLMPolicy(max_num_seqs=4, max_num_batched_tokens=100, preemption_mode="swap")
    old, new = seq("old", 4, 8), seq("new", 4, 8)
    p.add(old, 0.0)
    p.add(new, 1.0)
    for _ in range(3):
        toy_step(p, bm)
    d = toy_step(p, bm)
    assert d.recompute == [new] and not d.swap_out


def test_fcfs_reserves_whole_request_and_never_preempts():
    bm = BlockManager(block_size=4, num_device_blocks=10)
    p = FCFSPolicy(max_num_seqs=8, max_num_batched_tokens=64)
    a, b, c = seq("a", 8, 12), seq("b", 4, 12), seq("c", 4, 4)  # a needs 5 blocks, b 4, c 2
    for s in (a, b, c):
        p.add(s, 0.0)
    d = toy_step(p, bm)
    assert [i.seq.request_id for i in d.scheduled] == ["a", "b"]  # c would break the 10-block reserve
    steps = 1
    while not (a.is_finished and b.is_finished):
        d = toy_step(p, bm)
        assert not d.recompute and not d.swap_out
        assert "c" not in [i.seq.request_id for i in d.scheduled]
        steps += 1
    assert steps == 12
    d = toy_step(p, bm)
    assert [i.seq.request_id for i in d.scheduled] == ["c"]


def test_fcfs_prefills_whole_prompts_and_splits_only_a_lone_long_one():
    bm = BlockManager(block_size=4, num_device_blocks=100)
    p = FCFSPolicy(max_num_seqs=8, max_num_batched_tokens=10)
    short, long_ = seq("short", 6, 3), seq("long", 30, 3)
    p.add(short, 0.0)
    p.add(long_, 0.0)
    d = toy_step(p, bm)
    assert [(i.seq.request_id, i.num_tokens) for i in d.scheduled] == [("short", 6)]  # long waits
    while not short.is_finished:
        toy_step(p, bm)
    d = toy_step(p, bm)
    assert [(i.seq.request_id, i.num_tokens) for i in d.scheduled] == [("long", 10)]


def test_policy_arguments_are_validated():
    with pytest.raises(ValueError, match="max_num_seqs"):
        VLLMPolicy(0, 10)
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        FCFSPolicy(1, 0)
    with pytest.raises(ValueError, match="preemption_mode"):
        VLLMPolicy(1, 10, preemption_mode="keep")


def test_update_accounts_service_time_with_the_given_clock():
    bm = BlockManager(block_size=4, num_device_blocks=100)
    p = VLLMPolicy(max_num_seqs=4, max_num_batched_tokens=100)
    s = seq("a", 3, 5)
    p.add(s, 0.0)
    toy_step(p, bm, now=5.0)
    toy_step(p, bm, now=7.0)
    assert s.service_time == pytest.approx(0.02) and s.last_scheduled_time == 7.0


@pytest.mark.parametrize("policy", [FCFSPolicy(4, 16), VLLMPolicy(4, 16, "swap"), VLLMPolicy(4, 16)])
def test_policies_under_pressure_keep_accounting_and_finish_everything(policy):
    bm = BlockManager(block_size=2, num_device_blocks=10, num_host_blocks=6)
    seqs = [seq(f"r{i}", 3 + i, 6) for i in range(6)]
    for i, s in enumerate(seqs):
        policy.add(s, float(i))
    for step in range(200):
        toy_step(policy, bm, float(step))  # checks read-only scheduling and invariants every step
        if all(s.is_finished for s in seqs):
            break
    assert all(s.is_finished for s in seqs) and bm.num_free_device_blocks == 10


def test_apply_decision_refuses_infeasible_actions():
    from foundry.serve.policies import ScheduledRequest, SchedulerOutput

    bm = BlockManager(block_size=2, num_device_blocks=4, num_host_blocks=4)
    s = seq("a", 4, 4)
    with pytest.raises(RuntimeError, match="5 tokens"):
        apply_decision(SchedulerOutput(scheduled=[ScheduledRequest(s, 5)]), bm)
    apply_decision(SchedulerOutput(scheduled=[ScheduledRequest(s, 4)]), bm)
    s.num_computed_tokens += 4  # the batch ran
    s.output_token_ids.append(0)
    apply_decision(SchedulerOutput(swap_out=[s]), bm)
    with pytest.raises(RuntimeError, match="host"):
        apply_decision(SchedulerOutput(scheduled=[ScheduledRequest(s, 1)]), bm)
    big = seq("big", 10, 1)
    with pytest.raises(RuntimeError, match="needs 5 blocks"):
        apply_decision(SchedulerOutput(scheduled=[ScheduledRequest(big, 10)]), bm)
