"""The length ranker: its metrics against hand-computed values and scipy, online learning on run-length
decoding, the untrained prior, order, and checkpoint round-trips."""

from __future__ import annotations

import io
import math
import random

import pytest
import torch
from scipy.stats import kendalltau

from foundry.rl.ranker import LengthRanker, kendall_tau, recall_at
from foundry.rl.tasks import make_task


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_recall_hand_computed():
    assert recall_at([3, 1, 2, 0], [10, 9, 1, 0], alpha=0.5) == 0.5  # top-2: {0, 2} vs {0, 1}
    assert recall_at([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], alpha=0.4) == 0.0
    assert recall_at([1, 2, 3, 4, 5], [10, 20, 30, 40, 50], alpha=0.4) == 1.0
    assert recall_at([0.0, 1.0], [1, 2], alpha=0.01) == 1.0  # k is at least 1
    # a length tied with the k-th longest counts as top-k; tied scores go to the earlier index
    assert recall_at([0, 1, 0, 0], [5, 5, 1, 1], alpha=0.25) == 1.0
    assert recall_at([0, 0, 1, 0], [5, 5, 1, 1], alpha=0.25) == 0.0
    assert recall_at([0, 0, 0, 0], [1, 5, 5, 1], alpha=0.25) == 0.0  # all tied: index 0 is admitted
    assert recall_at([0, 0, 0, 0], [1, 5, 5, 1], alpha=0.5) == 0.5


def test_kendall_hand_computed_and_extremes():
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(2 * 3))  # one tie in x
    lengths = [3.0, 17.0, 1.0, 8.0, 8.0, 40.0]
    assert kendall_tau(lengths, lengths) == pytest.approx(1.0)
    assert kendall_tau([-x for x in lengths], lengths) == pytest.approx(-1.0)
    assert recall_at(lengths, lengths) == 1.0
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


@pytest.mark.parametrize("seed", range(4))
def test_kendall_matches_scipy_with_ties(seed):
    rng = random.Random(seed)
    n = rng.randint(5, 60)
    x = [rng.randint(0, 6) for _ in range(n)]  # small ranges: many ties on both sides
    y = [rng.randint(0, 4) + 0.5 * xi * (seed % 2) for xi in x]
    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)


def _held_out(task: str = "rle", count: int = 300) -> tuple[list[str], list[int]]:
    prompts = make_task(task).prompts(count, seed=999_999)
    return [p.text for p in prompts], [len(p.answer) for p in prompts]


@pytest.fixture(scope="module")
def trained() -> LengthRanker:
    """Online on run-length decoding: 6 updates, each on 128 fresh prompts with their true lengths
    (96 steps; seeds 0-3 reach recall 0.80-0.85, tau 0.82-0.88)."""
    ranker = LengthRanker(seed=0)
    task = make_task("rle")
    for step in range(6):
        batch = task.prompts(128, seed=step)
        info = ranker.update([p.text for p in batch], [len(p.answer) for p in batch])
        assert math.isfinite(info["loss"])
    return ranker


def test_online_training_learns_rle(trained):
    texts, lengths = _held_out()
    before = LengthRanker(seed=0).scores(texts)
    after = trained.scores(texts)
    # tau above what surface features give (prompt length: recall ~0.5, tau ~0.6; the number of digits:
    # ~0.65, ~0.7), so passing means the counts were read, not just counted
    assert recall_at(after, lengths) >= 0.7
    assert kendall_tau(after, lengths) >= 0.75
    assert recall_at(before, lengths) < 0.6
    assert kendall_tau(before, lengths) < 0.7


def test_untrained_orders_by_prompt_length_ties_by_index():
    ranker = LengthRanker(seed=0)
    assert ranker.order(["ab=", "abcd=", "a=", "dcba="]) == [1, 3, 0, 2]
    assert ranker.scores([]) == [] and ranker.order([]) == []


def test_order_is_longest_predicted_first(trained):
    texts = ["a1=", "a30b30=", "a5b2=", "c12=", "a2b3c4d5="]
    scores = trained.scores(texts)
    assert scores == trained.scores(texts)  # deterministic
    assert all(s >= 0 for s in scores)  # usable as predicted lengths by the dispatcher
    order = trained.order(texts)
    assert [scores[i] for i in order] == sorted(scores, reverse=True)
    assert order[0] == 1 and order[-1] == 0  # 60 tokens first, 1 token last


def _round_trip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_state_dict_round_trip_gives_identical_scores(trained):
    texts, _ = _held_out(count=50)
    restored = LengthRanker(seed=7)
    restored.load_state_dict(_round_trip(trained.state_dict()))
    assert restored.scores(texts) == trained.scores(texts)
    assert restored.buffer_prompts == trained.buffer_prompts and restored.steps == trained.steps


def test_resume_continues_identically():
    """Buffer, optimizer and minibatch RNG all come back: the next update matches step for step."""
    small = dict(hidden=16, layers=1, updates_per_batch=3, minibatch=16)
    task = make_task("rle")
    first, second = task.prompts(40, seed=1), task.prompts(40, seed=2)
    a = LengthRanker(seed=1, **small)
    a.update([p.text for p in first], [len(p.answer) for p in first])
    b = LengthRanker(seed=2, **small)
    b.load_state_dict(_round_trip(a.state_dict()))
    for r in (a, b):
        r.update([p.text for p in second], [len(p.answer) for p in second])
    texts = [p.text for p in first + second]
    assert a.scores(texts) == b.scores(texts)


def test_buffer_is_bounded_and_inputs_checked():
    ranker = LengthRanker(seed=0, hidden=16, layers=1, buffer=50, updates_per_batch=1, minibatch=8)
    for step in range(3):
        batch = make_task("reverse").prompts(30, seed=step)
        info = ranker.update([p.text for p in batch], [len(p.answer) for p in batch])
    assert info["buffer"] == 50 and len(ranker.buffer_prompts) == 50
    assert ranker.buffer_prompts[-1] == batch[-1].text  # the newest are kept
    with pytest.raises(ValueError, match="lengths"):
        ranker.update(["a1="], [1.0, 2.0])
