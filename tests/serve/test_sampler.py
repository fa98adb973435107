"""Sampling filters against hand-computed cases; sampled frequencies against the distribution."""

import math

import pytest
import torch

from foundry.serve.sampler import filter_logits, sample
from foundry.serve.sampling_params import SamplingParams


def kept(logits):
    return torch.isfinite(logits).nonzero().flatten().tolist()


def test_top_k_keeps_the_k_largest():
    assert kept(filter_logits(torch.tensor([1.0, 5.0, 3.0, 2.0]), top_k=2, top_p=1.0)) == [1, 2]
    assert kept(filter_logits(torch.tensor([1.0, 5.0, 3.0]), top_k=-1, top_p=1.0)) == [0, 1, 2]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([0.05, 0.5, 0.15, 0.3]))
    assert kept(filter_logits(logits, top_k=-1, top_p=0.8)) == [1, 3]  # 0.5 + 0.3 reaches 0.8
    assert kept(filter_logits(logits, top_k=-1, top_p=0.81)) == [1, 2, 3]
    assert kept(filter_logits(logits, top_k=-1, top_p=0.1)) == [1]  # the top token always stays


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampled_frequencies_follow_the_tempered_distribution(temperature):
    probs = torch.tensor([0.1, 0.6, 0.3])
    logits = torch.log(probs)[None].repeat(4000, 1)
    gens = [torch.Generator().manual_seed(0)] * 4000  # one stream shared by all rows
    tokens, _ = sample(logits, [SamplingParams(temperature=temperature)] * 4000, gens)
    expected = probs ** (1 / temperature)
    expected /= expected.sum()
    freq = torch.bincount(torch.tensor(tokens), minlength=3) / 4000
    sigma = torch.sqrt(expected * (1 - expected) / 4000)
    assert torch.all((freq - expected).abs() < 5 * sigma), (freq, expected)


def test_greedy_and_logprobs():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    params = [SamplingParams(temperature=0.0, logprobs=2), SamplingParams(temperature=0.0)]
    tokens, lps = sample(logits, params, [None, None])
    assert tokens == [1, 0] and lps[1] is None
    ref = torch.log_softmax(logits[0], -1)
    assert lps[0].token_id == 1 and lps[0].logprob == pytest.approx(float(ref[1]))
    assert list(lps[0].top) == [1, 2] and lps[0].top[2] == pytest.approx(float(ref[2]))
    assert math.exp(lps[0].logprob) < 1


def test_seeded_generators_reproduce():
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(3))
    p = SamplingParams(temperature=1.0)
    a = [sample(logits, [p], [g])[0][0] for g in [torch.Generator().manual_seed(9)] for _ in range(20)]
    g = torch.Generator().manual_seed(9)
    b = [sample(logits, [p], [g])[0][0] for _ in range(20)]
    assert a == b and len(set(a)) > 1


def test_processed_logprobs_are_of_the_sampled_distribution():
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0], [3.0, 0.0, 0.0, 1.0]])
    params = [SamplingParams(temperature=0.5, top_k=2, logprobs=3),
              SamplingParams(temperature=0.0, logprobs=1)]
    gens = [torch.Generator().manual_seed(0), None]
    raw_tokens, raw = sample(logits, params, gens)
    tokens, lps = sample(logits, params, [torch.Generator().manual_seed(0), None], "processed")
    assert tokens == raw_tokens  # the mode changes what is reported, never what is sampled
    kept2 = torch.log_softmax(torch.tensor([2.0, 1.0]) / 0.5, -1)  # top-2 of row 0, tempered
    assert lps[0].logprob == pytest.approx(float(kept2[[1, 2].index(tokens[0])]))
    assert lps[0].top == pytest.approx({1: float(kept2[0]), 2: float(kept2[1])})  # -inf tokens left out
    assert lps[1].logprob == raw[1].logprob and lps[1].top == raw[1].top  # greedy: processed is raw


def test_return_output_logprobs_alone_reports_the_sampled_token_only():
    logits = torch.tensor([[0.0, 2.0, 1.0]])
    _, [lp] = sample(logits, [SamplingParams(temperature=0.0, return_output_logprobs=True)], [None])
    assert lp.token_id == 1 and lp.top == {}
    assert lp.logprob == pytest.approx(float(torch.log_softmax(logits[0], -1)[1]))
