"""EngineCore without torch: admission, the decision check, one step through an executor, finish, stats."""

import subprocess
import sys

import pytest

from foundry.serve.block_manager import BlockManager
from foundry.serve.core import EngineCore, StepObserver, StepResult
from foundry.serve.policies import FCFSPolicy, ScheduledRequest, SchedulerOutput, VLLMPolicy
from foundry.serve.policies.base import Policy
from foundry.serve.sampling_params import SamplingParams
from foundry.serve.sequence import KVLocation, Sequence


class FixedTime:
    """Every step takes `elapsed`; tokens count up from 100 so a test can see which request got which."""

    def __init__(self, elapsed=0.5):
        self.elapsed, self.next_token, self.calls = elapsed, 100, []

    def execute(self, decision, plan, now):
        self.calls.append([(it.seq.request_id, it.num_tokens) for it in decision.scheduled])
        n = sum(1 for it in decision.scheduled if it.is_last_chunk)
        tokens = list(range(self.next_token, self.next_token + n))
        self.next_token += n
        return StepResult(now + self.elapsed, self.elapsed, tokens)


def seq(rid, prompt, max_tokens, t=0.0):
    return Sequence(rid, [1] * prompt, SamplingParams(max_tokens=max_tokens), arrival_time=t)


def make_core(policy=None, blocks=16, max_model_len=None, stop=None):
    policy = policy or VLLMPolicy(max_num_seqs=4, max_num_batched_tokens=32)
    return EngineCore(policy, BlockManager(4, blocks), FixedTime(), max_num_seqs=policy.max_num_seqs,
                      max_num_batched_tokens=policy.max_num_batched_tokens, max_model_len=max_model_len,
                      stop=stop, check_invariants=True)


def test_core_imports_without_torch():
    code = "import sys; import foundry.serve.core; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_admission_is_one_rule_with_the_field_to_blame():
    core = make_core(blocks=4, max_model_len=20)  # 4 blocks of 4 tokens
    with pytest.raises(ValueError, match="^prompt: must not be empty"):
        core.add(seq("a", 0, 4), 0.0)
    with pytest.raises(ValueError, match="^prompt: 10 prompt tokens .* exceed max_model_len 20"):
        core.add(seq("a", 10, 11), 0.0)
    with pytest.raises(ValueError, match="^max_tokens: prompt \\+ max_tokens need 5 KV blocks"):
        core.add(seq("a", 10, 10), 0.0)
    core.add(seq("a", 8, 8), 0.0)
    with pytest.raises(ValueError, match="^request_id: 'a' is already in the engine"):
        core.add(seq("a", 2, 2), 0.0)
    assert list(core.requests) == ["a"]


def test_a_step_emits_in_decision_order_finishes_and_counts():
    core = make_core()
    a, b = seq("a", 6, 1), seq("b", 3, 2)
    core.add(a, 0.0)
    core.add(b, 0.0)
    decision, plan, r = core.step(1.0)
    assert [(it.seq.request_id, it.num_tokens) for it in decision.scheduled] == [("a", 6), ("b", 3)]
    assert r.end == 1.5 and a.output_token_ids == [100] and b.output_token_ids == [101]
    assert a.is_finished and a.finish_reason == "length" and a.finish_time == a.first_token_time == 1.5
    assert a.kv_location is KVLocation.NONE and core.block_manager.num_blocks("a") == 0
    assert list(core.requests) == ["b"] and not b.is_finished
    core.step(2.0)
    assert b.is_finished and b.output_token_ids == [101, 102] and b.first_token_time == 1.5
    s = core.stats
    assert (s.num_steps, s.num_finished, s.busy_time) == (2, 2, 1.0)
    assert core.block_manager.num_free_device_blocks == 16


def test_a_prompt_chunk_short_of_the_end_gets_no_token():
    core = make_core(VLLMPolicy(max_num_seqs=4, max_num_batched_tokens=4))
    a = seq("a", 6, 3)
    core.add(a, 0.0)
    core.step(0.0)
    assert a.num_computed_tokens == 4 and a.output_token_ids == [] and a.first_token_time is None
    core.step(1.0)
    assert a.num_computed_tokens == 6 and a.output_token_ids == [100] and a.first_token_time == 1.5


def test_stop_and_max_model_len_end_requests():
    core = make_core(max_model_len=8, stop=lambda s, tok: s.request_id == "s")
    a, s = seq("a", 6, 2), seq("s", 2, 4)
    core.add(a, 0.0)
    core.add(s, 0.0)
    core.step(0.0)
    assert s.is_finished and s.finish_reason == "stop" and not a.is_finished
    core.step(1.0)  # a: 6 + 2 tokens reach max_model_len 8 (and max_tokens)
    assert a.is_finished and a.finish_reason == "length" and not core.requests


class Rogue(Policy):
    """Schedules whatever it is told to, for checking the core's decision check."""

    def __init__(self, batch):
        super().__init__(max_num_seqs=2, max_num_batched_tokens=8)
        self.batch = batch

    def add(self, seq, now):
        pass

    def remove(self, seq):
        pass

    def schedule(self, now, memory):
        return SchedulerOutput(scheduled=[ScheduledRequest(s, n) for s, n in self.batch])


@pytest.mark.parametrize("case, match", [
    ("unknown", "Rogue: scheduled finished or unknown request 'x'"),
    ("finished", "Rogue: scheduled finished or unknown request 'a'"),
    ("too many", "Rogue: scheduled 3 requests > max_num_seqs"),
    ("too long", "Rogue: scheduled 9 tokens > max_num_batched_tokens"),
])
def test_the_decision_check_refuses_policy_bugs(case, match):
    a, b, c = seq("a", 4, 1), seq("b", 4, 4), seq("c", 4, 4)
    batch = {"unknown": [(seq("x", 4, 4), 4)], "finished": [(a, 4)], "too many": [(a, 1), (b, 1), (c, 1)],
             "too long": [(b, 4), (c, 5)]}[case]
    core = make_core(Rogue(batch))
    for s in (a, b, c):
        core.add(s, 0.0)
    if case == "finished":
        core.abort("a")
        assert a.is_finished and a.finish_reason == "abort" and core.stats.num_aborted == 1
    with pytest.raises(RuntimeError, match=match):
        core.step(0.0)


def test_release_and_adopt_move_a_request_between_cores():
    src, dst = make_core(FCFSPolicy(4, 32)), make_core(FCFSPolicy(4, 32))
    a = seq("a", 5, 4)
    src.add(a, 0.0)
    src.step(0.0)
    assert src.release("a") is a and not src.requests and src.block_manager.num_free_device_blocks == 16
    a.num_computed_tokens = 0  # recompute on the other instance
    dst.adopt(a, 1.0)
    while dst.requests:
        dst.step(2.0)
    assert a.output_token_ids == [100, 100, 101, 102] and a.finish_reason == "length"


def test_observers_see_each_step_in_order_and_leave_with_their_block():
    events = []

    class Log(StepObserver):
        def step_starting(self):
            events.append("starting")

        def decided(self, decision):  # before anything changes: the request has computed nothing yet
            events.append(("decided", [(it.seq.request_id, it.seq.num_computed_tokens)
                                       for it in decision.scheduled]))

        def step_ended(self, decision, plan, result):
            events.append(("ended", result.tokens))

    core = make_core()
    core.add(seq("a", 3, 2), 0.0)
    log = Log()
    with core.observe(log) as attached:
        assert attached is log and core.observers == (log,)
        core.step(0.0)
    core.step(1.0)  # detached: not seen
    assert events == ["starting", ("decided", [("a", 0)]), ("ended", [100])]
    assert core.observers == ()
