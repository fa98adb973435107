"""Look-alike length distributions hit the published statistics they were built from; arrivals are
rescaled to the exact rate; the same seed gives the same requests at every rate."""

import numpy as np
import pytest

from foundry.sim.elastic.workloads import (
    LengthParams,
    dataset_lengths,
    dataset_workload,
    zipf_prompt_lengths,
)


def test_leval_percentiles_and_lveval_word_mean_follow_their_sources():
    p, _ = dataset_lengths("leval", 20_000, seed=0)
    assert np.percentile(p, 10) == pytest.approx(5_000, rel=0.05)
    assert np.percentile(p, 90) == pytest.approx(21_000, rel=0.05)
    p, o = dataset_lengths("lveval", 20_000, seed=0)
    words = p / LengthParams().lveval_tokens_per_word
    assert words.mean() == pytest.approx(102_380, rel=0.03)  # LV-Eval README's average
    assert words.min() >= 11_000 and o.max() <= 999


def test_sharegpt_filter_and_mixed_thirds():
    p, o = dataset_lengths("sharegpt", 5_000, seed=1)
    assert p.min() >= 4 and o.min() >= 4 and o.max() < 1000 and (p + o).max() < 200_000
    p, _ = dataset_lengths("mixed", 6_000, seed=1)
    assert 0.28 < (p < 5_000).mean() < 0.42  # about a third are ShareGPT-like


def test_zipf_lengths_in_range_and_heavier_head_for_larger_alpha():
    rng = np.random.default_rng(0)
    x = {a: zipf_prompt_lengths(a, 20_000, rng) for a in (1.0, 1.4)}
    for v in x.values():
        assert v.min() >= 10 and v.max() < 200_000
    assert np.median(x[1.4]) < np.median(x[1.0])
    p, o = dataset_lengths("zipf-1.2", 500, seed=2)
    assert len(p) == len(o) == 500 and o.min() >= 4
    with pytest.raises(ValueError, match="dataset"):
        dataset_lengths("books", 5, seed=0)


def test_arrivals_are_rescaled_to_the_rate_and_lengths_do_not_depend_on_it():
    a, b = dataset_workload("leval", 2.0, 50, seed=3), dataset_workload("leval", 4.0, 50, seed=3)
    assert a.requests[-1].arrival_time == pytest.approx(49 / 2.0)
    assert [(r.prompt_len, r.output_len) for r in a.requests] == \
        [(r.prompt_len, r.output_len) for r in b.requests]
    assert [2 * r.arrival_time for r in b.requests] == pytest.approx([r.arrival_time for r in a.requests])
