"""ESP prefill (ring attention) and multi-master decode against one instance's dense forward, with KV
kept exactly once through keep plans, migrations and scale-up, on 1-4 instances (threads in one process:
the same instance code that runs over gloo between processes)."""

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from foundry.serve.elastic.comm import ThreadHub
from foundry.serve.elastic.instance import CommSpec, ElasticInstance
from foundry.serve.elastic.multi_master_decode import DecodeWork
from foundry.serve.elastic.placement import Placement, split_by_capacity
from foundry.serve.elastic.ring_prefill import PrefillWork

TOL = 1e-4


def _check_held(insts, placement: Placement) -> None:
    for i, inst in enumerate(insts):
        want = {rid: [p for r in placement.ranges(rid) if r.instance == i for p in range(r.start, r.stop)]
                for rid in placement}
        assert inst.held() == {k: v for k, v in want.items() if v}, f"instance {i}"


def _same_greedy(got: torch.Tensor, ref: torch.Tensor) -> None:
    top2 = torch.topk(ref, 2).values
    if float(top2[0] - top2[1]) > 1e-4:
        assert int(got.argmax()) == int(ref.argmax())


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_ring_prefill_then_multi_master_decode_equal_one_instance(esp_model, n):
    cfg, model, dense = esp_model
    rng = random.Random(n)
    hub = ThreadHub(n)
    insts = [ElasticInstance(r, n, cfg, model.state_dict(), 120, CommSpec("thread", hub)) for r in range(n)]
    pool = ThreadPoolExecutor(n)
    placement = Placement([120] * n)
    # prompts longer than one instance's pool, shorter than the ring, and in between
    lengths = {"long": 150 if n > 1 else 70, "one": 1, "mid": 23}
    seqs = {rid: [rng.randrange(cfg.vocab_size) for _ in range(L)] for rid, L in lengths.items()}
    ring = tuple(rng.sample(range(n), n))
    keep = {}
    for rid, L in lengths.items():
        order = rng.sample(range(n), n)  # where the KV ends up is the plan's choice, not the ring's
        keep[rid] = tuple(split_by_capacity(L, {i: placement.free(i) for i in range(n)}, order))
        placement.assign(rid, keep[rid])
    work = PrefillWork(tuple(seqs), tuple(tuple(s) for s in seqs.values()), ring, keep)
    got = {k: v for part in pool.map(lambda inst: inst.prefill(work), insts) for k, v in part.items()}
    assert set(got) == set(seqs)
    for rid, s in seqs.items():
        ref = dense(s)[-1]
        assert torch.allclose(got[rid], ref, atol=TOL, rtol=0), rid
        _same_greedy(got[rid], ref)
    placement.check({rid: len(s) for rid, s in seqs.items()})
    _check_held(insts, placement)

    for step in range(6):  # decode, with a migration and a master change between steps
        if step == 3 and n > 1:
            rid = "long"
            dst = next(i for i in range(n) if placement.free(i) >= 10)
            for piece in placement.move(rid, 0, 10, dst):
                if piece.instance != dst:
                    sent = pool.submit(insts[piece.instance].send_kv, rid, piece.start, piece.stop, dst)
                    insts[dst].recv_kv(rid, piece.start, piece.stop, piece.instance)
                    sent.result()
        masters, positions, tokens = [], [], []
        for rid in seqs:
            tok = int(got[rid].argmax())
            positions.append(len(seqs[rid]))
            seqs[rid].append(tok)
            tokens.append(tok)
            m = max(range(n), key=lambda i: (placement.free(i), -i)) if step % 2 else rng.randrange(n)
            if placement.free(m) == 0:
                m = max(range(n), key=placement.free)
            placement.append(rid, m)
            masters.append(m)
        dw = DecodeWork(tuple(seqs), tuple(tokens), tuple(positions), tuple(masters),
                        tuple(placement.holders(r) for r in seqs), tuple(range(n)))
        got = {k: v for part in pool.map(ElasticInstance.decode, insts, [dw] * n) for k, v in part.items()}
        for rid, s in seqs.items():
            ref = dense(s)[-1]
            assert torch.allclose(got[rid], ref, atol=TOL, rtol=0), (rid, step)
            _same_greedy(got[rid], ref)
        placement.check({rid: len(s) for rid, s in seqs.items()})
        _check_held(insts, placement)
    for rid in list(seqs):  # finishing frees every slot
        for i in placement.holders(rid):
            insts[i].free([rid])
        placement.drop(rid)
    assert all(inst.num_free_slots() == 120 for inst in insts)
