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
