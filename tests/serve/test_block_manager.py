"""Block accounting: allocate/append/free, swaps, refcounts and copy-on-write, invariants."""

import random

import pytest

from foundry.serve.block_manager import BlockManager, InvariantError
from foundry.serve.sequence import KVLocation


def test_allocate_append_free_counts_blocks():
    bm = BlockManager(block_size=4, num_device_blocks=10, num_host_blocks=4)
    assert bm.num_new_blocks("a", 9) == 3 and bm.can_allocate("a", 9)
    bm.allocate("a", 9)
    assert bm.num_blocks("a") == 3 and bm.num_free_device_blocks == 7
    assert bm.append("a", 12) == [] and bm.num_blocks("a") == 3  # still fits in the third block
    bm.append("a", 13)
    assert bm.num_blocks("a") == 4 and bm.device_usage == pytest.approx(0.4)
    assert not bm.can_allocate("b", 25)  # 7 blocks needed, 6 free
    with pytest.raises(RuntimeError, match="needs 7 blocks"):
        bm.allocate("b", 25)
    bm.check_invariants()
    bm.free("a")
    bm.free("a")  # freeing twice is a no-op at the table level
    assert bm.num_free_device_blocks == 10
    bm.check_invariants()


def test_swap_out_and_in_return_plans_between_pools():
    bm = BlockManager(block_size=2, num_device_blocks=6, num_host_blocks=3)
    bm.allocate("a", 5)  # 3 blocks
    dev = list(bm.block_ids("a"))
    assert bm.can_swap_out("a")
    plan = bm.swap_out("a")
    assert [d for d, _ in plan] == dev and bm.location("a") is KVLocation.HOST
    assert bm.num_free_device_blocks == 6 and bm.num_free_host_blocks == 0
    assert bm.host_usage == 1.0
    with pytest.raises(ValueError, match="host"):
        bm.num_new_blocks("a", 6)
    bm.allocate("b", 8)  # 4 blocks: only 2 left, so "a" cannot come back
    assert not bm.can_swap_in("a")
    bm.free("b")
    back = bm.swap_in("a")
    assert [h for h, _ in back] == [h for _, h in plan] and bm.location("a") is KVLocation.DEVICE
    bm.check_invariants()
    bm.free("a")
    bm.check_invariants()


def test_swap_out_refuses_when_host_is_full():
    bm = BlockManager(block_size=2, num_device_blocks=6, num_host_blocks=1)
    bm.allocate("a", 3)
    assert not bm.can_swap_out("a")
    with pytest.raises(RuntimeError, match="cannot swap out"):
        bm.swap_out("a")


def test_fork_shares_blocks_and_copies_on_write():
    bm = BlockManager(block_size=4, num_device_blocks=8)
    bm.allocate("a", 6)  # blocks: full + half-full
    bm.fork("a", "b")
    assert bm.num_free_device_blocks == 6 and bm.device.refcount[bm.block_ids("a")[0]] == 2
    assert bm.num_new_blocks("b", 7) == 1  # the shared half-full block must be copied
    shared_tail = bm.block_ids("b")[-1]
    copies = bm.append("b", 7)
    assert copies == [(shared_tail, bm.block_ids("b")[-1])] and bm.block_ids("b")[-1] != shared_tail
    assert bm.block_ids("b")[0] == bm.block_ids("a")[0]
    assert not bm.can_swap_out("a")  # shared blocks cannot move
    bm.check_invariants()
    bm.free("a")
    bm.free("b")
    assert bm.num_free_device_blocks == 8
    bm.check_invariants()


def test_fork_source_fills_its_last_block_in_place_and_only_exclusive_blocks_are_freed():
    bm = BlockManager(block_size=4, num_device_blocks=8)
    bm.allocate("a", 6)  # a prompt: a full and a half-full block
    for dst in ("b", "c"):
        bm.fork("a", dst)
    tail = bm.block_ids("a")[-1]
    assert bm.num_new_blocks("a", 8) == 0 and bm.append("a", 8) == []  # no copy: forks read slots 0-1 only
    assert bm.block_ids("a")[-1] == tail and bm.num_new_blocks("b", 7) == 1
    assert bm.append("b", 7) == [(tail, bm.block_ids("b")[-1])]
    assert bm.num_exclusive_blocks("a") == 0 and bm.num_exclusive_blocks("b") == 1  # its copied block
    bm.check_invariants()
    used = bm.device.num_blocks - bm.num_free_device_blocks
    bm.free("b")  # frees its own block only; the shared ones stay with a and c
    assert bm.device.num_blocks - bm.num_free_device_blocks == used - 1
    assert bm.num_new_blocks("c", 7) == 1  # c still shares a's partial block with a: it copies
    bm.free("a")
    assert bm.num_new_blocks("c", 7) == 0 and bm.num_exclusive_blocks("c") == 2  # alone now: in place
    bm.check_invariants()


def test_invariant_check_catches_corruption():
    bm = BlockManager(block_size=4, num_device_blocks=4)
    bm.allocate("a", 8)
    bm.device.free.append(bm.block_ids("a")[0])  # a used block also on the free list
    with pytest.raises(InvariantError):
        bm.check_invariants()
    bm = BlockManager(block_size=4, num_device_blocks=4)
    bm.allocate("a", 8)
    bm.tables["a"].blocks.pop()  # leak: block referenced by nobody, not free
    with pytest.raises(InvariantError):
        bm.check_invariants()


def test_bad_sizes_name_the_parameter():
    with pytest.raises(ValueError, match="block_size"):
        BlockManager(0, 4)
    with pytest.raises(ValueError, match="num_device_blocks"):
        BlockManager(4, 0)


@pytest.mark.parametrize("seed", range(5))
def test_random_operations_keep_invariants(seed):
    rng = random.Random(seed)
    bm = BlockManager(block_size=rng.choice([1, 2, 4]), num_device_blocks=12, num_host_blocks=6)
    tokens: dict[str, int] = {}
    for step in range(300):
        op = rng.random()
        live = sorted(tokens)
        if op < 0.3:
            rid, n = f"r{step}", rng.randint(1, 20)
            if bm.can_allocate(rid, n):
                bm.allocate(rid, n)
                tokens[rid] = n
        elif op < 0.55 and live:
            rid = rng.choice(live)
            if bm.location(rid) is KVLocation.DEVICE and bm.can_allocate(rid, tokens[rid] + 3):
                bm.append(rid, tokens[rid] + 3)
                tokens[rid] += 3
        elif op < 0.7 and live:
            rid = rng.choice(live)
            if bm.can_swap_out(rid):
                bm.swap_out(rid)
            elif bm.can_swap_in(rid):
                bm.swap_in(rid)
        elif op < 0.8 and live:
            src = rng.choice(live)
            if bm.location(src) is KVLocation.DEVICE:
                bm.fork(src, f"f{step}")
                tokens[f"f{step}"] = tokens[src]
        elif live:
            rid = rng.choice(live)
            bm.free(rid)
            del tokens[rid]
        bm.check_invariants()
        used = sum(bm.num_blocks(r) for r in tokens if bm.location(r) is KVLocation.HOST)
        assert used == bm.host.num_blocks - bm.num_free_host_blocks
    for rid in list(tokens):
        bm.free(rid)
    assert bm.num_free_device_blocks == 12 and bm.num_free_host_blocks == 6


def test_apply_decision_rejects_more_tokens_than_are_left_to_compute():
    from foundry.serve.memory_plan import apply_decision
    from foundry.serve.policies.base import ScheduledRequest, SchedulerOutput
    from foundry.serve.sampling_params import SamplingParams
    from foundry.serve.sequence import Sequence

    bm = BlockManager(block_size=4, num_device_blocks=8)
    seq = Sequence("a", [1] * 6, SamplingParams(max_tokens=4), arrival_time=0.0)
    step = SchedulerOutput(scheduled=[ScheduledRequest(seq, 6)])
    apply_decision(step, bm)
    seq.num_computed_tokens += 6  # the batch ran
    assert bm.num_blocks("a") == 2
    for bad in (0, 1):  # nothing left to compute until a token is emitted; 0 tokens is never valid
        with pytest.raises(RuntimeError, match="left to compute"):
            apply_decision(SchedulerOutput(scheduled=[ScheduledRequest(seq, bad)]), bm)
    seq.output_token_ids.append(7)
    apply_decision(SchedulerOutput(scheduled=[ScheduledRequest(seq, 1)]), bm)  # the decode step fits
    assert bm.num_blocks("a") == 2 and bm.tables["a"].num_tokens == 7
