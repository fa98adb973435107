"""The SRPT oracle: it orders by remaining output tokens (max_tokens - generated) and preempts for them."""

from foundry.serve.block_manager import BlockManager
from foundry.serve.policies import SRPTOraclePolicy
from foundry.serve.sampling_params import SamplingParams
from foundry.serve.sequence import KVLocation, Sequence
from tests.serve.policy_driver import emit_placeholder_tokens


def seq(rid: str, prompt: int, max_tokens: int, t: float = 0.0) -> Sequence:
    return Sequence(rid, [1] * prompt, SamplingParams(max_tokens=max_tokens), arrival_time=t)


def run(policy, bm, now):
    from foundry.serve.memory_plan import apply_decision

    d = policy.schedule(now, bm)
    apply_decision(d, bm)
    policy.update(d, now + 0.01, 0.01)
    emit_placeholder_tokens(d, policy, bm, now)
    bm.check_invariants()
    return [item.seq.request_id for item in d.scheduled]


def test_srpt_runs_the_shortest_remaining_job_and_preempts_a_long_one():
    bm = BlockManager(4, 64)
    p = SRPTOraclePolicy(max_num_seqs=1, max_num_batched_tokens=64)
    long, short = seq("long", 4, 30), seq("short", 4, 3, t=1.0)
    p.add(long, 0.0)
    assert run(p, bm, 0.0) == ["long"]
    p.add(short, 1.0)
    assert [run(p, bm, 1.0 + i) for i in range(3)] == [["short"]] * 3  # 3 left < 29 left
    assert short.is_finished and long.kv_location is KVLocation.DEVICE  # long kept its KV meanwhile
    assert run(p, bm, 5.0) == ["long"]


def test_srpt_completion_order_is_by_output_length_when_all_arrive_together():
    bm = BlockManager(4, 256)
    p = SRPTOraclePolicy(max_num_seqs=2, max_num_batched_tokens=64)
    lens = {"a": 9, "b": 2, "c": 5, "d": 1, "e": 7}
    seqs = [seq(r, 4, n) for r, n in lens.items()]
    for s in seqs:
        p.add(s, 0.0)
    for i in range(100):
        run(p, bm, float(i))
        if all(s.is_finished for s in seqs):
            break
    finished = [s.request_id for s in sorted(seqs, key=lambda s: (s.finish_time, lens[s.request_id]))]
    assert finished == sorted(lens, key=lens.get)
    assert bm.num_free_device_blocks == 256
