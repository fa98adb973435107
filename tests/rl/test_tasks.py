import re
import statistics

import pytest

from foundry.rl.tasks import TASKS, char_accuracy, make_task


def decode_rle(text: str) -> str:
    return "".join(letter * int(count) for letter, count in re.findall(r"([a-z])(\d+)", text))


def test_run_length_answers_decode_their_prompts_and_fit_the_cap():
    task = make_task("rle")
    for p in task.prompts(500, seed=3):
        assert p.text.endswith("=")
        assert decode_rle(p.text[:-1]) == p.answer
        assert len(p.answer) + 1 <= task.max_new_tokens  # the answer and EOS fit


def test_run_length_lengths_are_heavy_tailed_and_reverse_lengths_follow_the_prompt():
    lens = sorted(len(p.answer) for p in make_task("rle").prompts(2000, seed=0))
    assert lens[int(0.99 * len(lens))] >= 3 * statistics.median(lens)
    for p in make_task("reverse").prompts(200, seed=0):
        assert len(p.answer) == len(p.text) - 1 and p.answer == p.text[-2::-1]


def test_prompts_are_a_function_of_the_seed():
    task = make_task("rle")
    assert task.prompts(20, seed=5) == task.prompts(20, seed=5) != task.prompts(20, seed=6)


def test_reward_is_one_only_for_the_exact_answer():
    task = make_task("reverse")
    p = task.prompts(1, seed=0)[0]
    assert task.reward(p, p.answer) == 1.0 and task.is_correct(p, p.answer)
    wrong = p.answer[:-1] + ("a" if p.answer[-1] != "a" else "b")
    assert 0 < task.reward(p, wrong) < 1 and not task.is_correct(p, wrong)
    assert task.reward(p, p.answer + "x") == pytest.approx(len(p.answer) / (len(p.answer) + 1))
    assert char_accuracy("", "") == 1.0 and char_accuracy("", "ab") == 0.0


def test_unknown_task_names_the_choices():
    with pytest.raises(ValueError, match="task: unknown task 'nope'"):
        make_task("nope")
    assert set(TASKS) >= {"rle", "reverse"}
