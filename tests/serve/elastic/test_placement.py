import random

import pytest

from foundry.serve.elastic.placement import KVRange, Placement, PlacementError, split_by_capacity


def test_assign_append_move_drop_keep_every_token_in_one_place():
    p = Placement([10, 10, 10])
    p.assign("a", [KVRange(0, 0, 6), KVRange(1, 6, 9)])
    p.append("a", 2)
    p.append("a", 2)
    p.check({"a": 11})
    assert p.holders("a") == (0, 1, 2) and [p.used(i) for i in range(3)] == [6, 3, 2]
    moved = p.move("a", 4, 8, dst=2)  # spans instances 0 and 1
    assert moved == [KVRange(0, 4, 6), KVRange(1, 6, 8)]
    p.check({"a": 11})
    assert p.ranges("a") == (KVRange(0, 0, 4), KVRange(2, 4, 8), KVRange(1, 8, 9), KVRange(2, 9, 11))
    assert p.drop("a") and [p.used(i) for i in range(3)] == [0, 0, 0]
    p.check({})


def test_refuses_gaps_overlaps_and_over_capacity():
    p = Placement([4, 4])
    with pytest.raises(PlacementError, match="tile"):
        p.assign("a", [KVRange(0, 0, 2), KVRange(1, 3, 4)])
    with pytest.raises(PlacementError, match="capacity"):
        p.assign("a", [KVRange(0, 0, 5)])
    p.assign("a", [KVRange(0, 0, 4)])
    with pytest.raises(PlacementError, match="capacity"):
        p.append("a", 0)
    with pytest.raises(PlacementError, match="not all held"):
        p.move("a", 2, 6, dst=1)
    p.check({"a": 4})


def test_split_by_capacity_fills_in_order():
    assert split_by_capacity(7, {0: 3, 1: 5}, [1, 0]) == [KVRange(1, 0, 5), KVRange(0, 5, 7)]
    with pytest.raises(PlacementError):
        split_by_capacity(9, {0: 3, 1: 5}, [0, 1])


def test_random_walk_conserves_tokens():
    rng = random.Random(0)
    p = Placement([50, 50, 50, 50])
    lengths: dict[str, int] = {}
    for step in range(400):
        op = rng.random()
        if op < 0.2:
            rid, n = f"r{step}", rng.randint(1, 30)
            free = {i: p.free(i) for i in range(4)}
            if sum(free.values()) >= n:
                p.assign(rid, split_by_capacity(n, free, rng.sample(range(4), 4)))
                lengths[rid] = n
        elif lengths and op < 0.6:
            rid = rng.choice(sorted(lengths))
            room = [i for i in range(4) if p.free(i) > 0]
            if room:
                p.append(rid, rng.choice(room))
                lengths[rid] += 1
        elif lengths and op < 0.85:
            rid = rng.choice(sorted(lengths))
            a = rng.randrange(lengths[rid])
            b = rng.randint(a + 1, lengths[rid])
            dst = rng.randrange(4)
            already = sum(max(0, min(r.stop, b) - max(r.start, a)) for r in p.ranges(rid)
                          if r.instance == dst)
            if p.free(dst) >= (b - a) - already:
                p.move(rid, a, b, dst)
            else:
                with pytest.raises(PlacementError, match="capacity"):
                    p.move(rid, a, b, dst)  # refused before anything changes
        elif lengths:
            rid = rng.choice(sorted(lengths))
            p.drop(rid)
            del lengths[rid]
        p.check(lengths)
