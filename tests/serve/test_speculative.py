"""Speculative decoding (prompt lookup): plain decoding's outputs, the target's distribution, slots back."""

import collections
import dataclasses
import random

import pytest
import torch

from foundry.serve import SamplingParams
from foundry.serve.sampler import filter_logits, verify_drafts
from foundry.serve.speculative import NgramProposer

GREEDY = SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)


def test_prompt_lookup_proposes_what_followed_the_latest_match():
    p = NgramProposer(k=3, max_n=2)
    assert p.propose([1, 2, 3, 4, 9, 1, 2]) == [3, 4, 9]  # suffix [1, 2] seen at 0
    assert p.propose([5, 6, 7, 5, 6, 8, 5, 6]) == [8, 5, 6]  # the latest occurrence wins
    assert p.propose([1, 2, 3]) == []  # nothing repeats
    assert p.propose([4, 4, 4], k=1) == [4]
    assert p.propose([1, 2, 1], k=0) == []


def _repetitive(seed, n=10):
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        motif = [rng.randrange(1, 250) for _ in range(rng.randrange(3, 8))]
        tail = [rng.randrange(1, 250) for _ in range(rng.randrange(0, 5))]
        prompts.append(motif * rng.randrange(2, 6) + tail)
    params = [dataclasses.replace(GREEDY, max_tokens=rng.randrange(1, 30)) for _ in prompts]
    return prompts, params


@pytest.mark.parametrize("policy", ["vllm", "fcfs", "mlfq"])
@pytest.mark.parametrize("blocks", [18, 128])  # 18: preemption and swaps with drafts in flight
def test_greedy_outputs_and_logprobs_are_plain_decodings(make_engine, policy, blocks):
    prompts, params = _repetitive(seed=blocks)
    params = [dataclasses.replace(p, logprobs=0, return_output_logprobs=True) for p in params]
    opts = dict(policy=policy, block_size=4, num_device_blocks=blocks, num_host_blocks=64, max_num_seqs=4,
                max_num_batched_tokens=32, preemption_mode="swap")
    plain = make_engine(**opts).generate(prompts, params)
    spec_engine = make_engine(**opts, speculative_method="ngram", speculative_adaptive=False,
                              speculative_num_tokens=3,
                              check_invariants=True)
    spec = spec_engine.generate(prompts, params)
    assert [o.output_token_ids for o in spec] == [o.output_token_ids for o in plain]
    for a, b in zip(plain, spec, strict=True):  # every token's logprob, from a chunk vs a decode step
        assert b.output_logprobs == pytest.approx(a.output_logprobs, abs=1e-4)
    stats = spec_engine.stats()
    assert stats.spec_draft_tokens > 0 and stats.spec_acceptance_rate > 0
    bm = spec_engine.block_manager
    assert not bm.tables and bm.num_free_device_blocks == blocks  # every draft slot given back


def test_fewer_steps_when_drafts_are_accepted(make_engine):
    prompt, params = list(range(1, 30)) * 3, dataclasses.replace(GREEDY, max_tokens=40)
    plain = make_engine(block_size=4)
    spec = make_engine(block_size=4, speculative_method="ngram", speculative_adaptive=False)
    want = plain.generate([prompt], params)[0].output_token_ids
    assert spec.generate([prompt], params)[0].output_token_ids == want
    assert len(plain.iteration_records) == 40  # one token a step
    accepted = spec.executor.num_accepted_tokens
    assert accepted > 0 and len(spec.iteration_records) == 40 - accepted  # each kept draft saves a step


def test_stop_strings_and_eos_inside_accepted_drafts_end_the_request_there(make_engine):
    prompts, _ = _repetitive(seed=5, n=3)
    base = make_engine(block_size=4)
    free = base.generate(prompts, GREEDY)
    stops = [SamplingParams(max_tokens=24, temperature=0.0, stop_token_ids=[o.output_token_ids[5]])
             for o in free]
    want = [o.output_token_ids for o in make_engine(block_size=4).generate(prompts, stops)]
    engine = make_engine(block_size=4, speculative_method="ngram", speculative_adaptive=False,
                         check_invariants=True)
    got = engine.generate(prompts, stops)
    assert [o.output_token_ids for o in got] == want
    assert all(o.finish_reason == "stop" for o in got)


def test_n_samples_and_prefix_caching_with_speculation(make_engine):
    prompts, _ = _repetitive(seed=7, n=2)
    params = dataclasses.replace(GREEDY, n=2)
    want = [o.output_token_ids for o in make_engine(block_size=4).generate(prompts, params)]
    engine = make_engine(block_size=4, speculative_method="ngram", speculative_adaptive=False,
                         enable_prefix_caching=True,
                         check_invariants=True)
    assert [o.output_token_ids for o in engine.generate(prompts, params)] == want
    assert [o.output_token_ids for o in engine.generate(prompts, params)] == want  # now from the cache


def test_rejection_sampling_keeps_the_targets_distribution():
    """Against the closed form: the first emitted token ~ p0; after an accepted first draft, the next ~ p1."""
    vocab, n = 6, 20000
    gen_logits = torch.Generator().manual_seed(0)
    logits = torch.randn(3, vocab, generator=gen_logits) * 1.5
    drafts = [2, 4]  # one-hot proposals the target may or may not like
    params = SamplingParams(max_tokens=8, temperature=0.8, top_k=5)
    g = torch.Generator().manual_seed(1)
    first, second = collections.Counter(), collections.Counter()
    for _ in range(n):
        tokens, _ = verify_drafts(logits, drafts, params, g, "raw")
        first[tokens[0]] += 1
        if tokens[0] == drafts[0]:
            second[tokens[1]] += 1
    p = [torch.softmax(filter_logits(row / 0.8, 5, 1.0), -1) for row in logits]
    tv1 = 0.5 * sum(abs(first[t] / n - float(p[0][t])) for t in range(vocab))
    m = sum(second.values())
    tv2 = 0.5 * sum(abs(second[t] / m - float(p[1][t])) for t in range(vocab))
    assert m > 1000 and tv1 < 0.02 and tv2 < 0.03, (tv1, tv2, m)


@pytest.fixture(scope="module")
def other_draft(tmp_path_factory):
    """A draft with the test model's shape and tokenizer but other weights: it agrees only sometimes."""
    from foundry.llm import build_model, build_tiny_tokenizer, save_checkpoint
    from tests.serve.conftest import TINY_TEST_CONFIG

    path = tmp_path_factory.mktemp("draft")
    save_checkpoint(build_model(TINY_TEST_CONFIG, seed=1), build_tiny_tokenizer(), path)
    return str(path)


@pytest.mark.parametrize("draft", ["same", "other"])
def test_a_draft_model_gives_plain_decodings_outputs(make_engine, tiny_ckpt, other_draft, draft):
    prompts, params = _repetitive(seed=11, n=6)
    want = [o.output_token_ids for o in make_engine(block_size=4, max_num_seqs=4).generate(prompts, params)]
    engine = make_engine(block_size=4, max_num_seqs=4, num_device_blocks=40, speculative_method="draft",
                         speculative_adaptive=False,
                         speculative_draft_model=tiny_ckpt if draft == "same" else other_draft,
                         check_invariants=True)
    assert [o.output_token_ids for o in engine.generate(prompts, params)] == want
    stats = engine.stats()
    if draft == "same":  # the target's own weights propose: every draft is kept
        assert stats.spec_acceptance_rate == 1.0
    else:
        assert 0 <= stats.spec_acceptance_rate < 1.0 and stats.spec_draft_tokens > 0
    proposer = engine.executor.proposer
    proposer.propose_batch({})  # finished requests' draft KV goes at the next proposal
    assert not proposer.memory.tables and proposer.memory.num_free_device_blocks == 40


def test_a_draft_with_another_vocabulary_is_refused(make_engine):
    with pytest.raises(ValueError, match="^speculative_draft_model: .* another vocabulary"):
        make_engine(speculative_method="draft", speculative_draft_model="foundry-tiny")


def test_the_guard_stops_drafting_for_a_rejecting_request_and_probes_it_again():
    from foundry.serve.speculative import AcceptanceGuard

    g = AcceptanceGuard(min_acceptance=0.3, probe_every=4)
    assert g.allows("a")  # no history: draft
    g.record("a", 4, 0)
    g.record("a", 4, 0)
    assert [g.allows("a") for _ in range(8)] == [False, False, False, True] * 2  # a probe every 4th step
    g.record("a", 4, 4)  # the probe was accepted in full: back above the bar
    assert g.allows("a")
    g.record("b", 4, 3)
    g.keep_only({"b"})
    assert set(g.recent) == {"b"}


def test_the_speed_guard_drafts_only_while_it_is_faster_and_probes_the_other_way():
    from foundry.serve.speculative import SpeedGuard

    g = SpeedGuard(probe_every=4, alpha=1.0, max_probe_every=16)
    choices = []
    for _ in range(30):  # drafting costs 5 ms a token, plain decoding 2 ms
        choices.append(g.speculate())
        g.record(choices[-1], 0.010 if choices[-1] else 0.004, 2)
    # plain first; drafting tried after 4 plain steps, then after 16 (a confirmed probe quadruples the wait)
    assert [i for i, c in enumerate(choices) if c] == [4, 21]
    g.since = g.interval  # a probe is due, and drafting has become cheaper (the model started repeating)
    assert g.speculate()
    g.record(True, 0.001, 2)
    assert g.interval == 4 and g.speculate()  # overturned: drafting from now on, probes every 4 again
