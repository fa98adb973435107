"""What an RL task is: a prompt sampler, a verifiable reward and, for the SFT warm-up, the answer."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    text: str  # what the policy sees, ending with the task's separator
    answer: str  # the one correct completion (the SFT target; the reward compares against it)


class Task(ABC):
    """A task with verifiable rewards. Subclass it to add your own (register it in `TASKS`).

    Prompts and answers are short ASCII strings: the policy reads and writes characters.
    """

    name: str = "task"
    max_new_tokens: int = 64  # generation cap (a truncated answer is simply wrong)

    @abstractmethod
    def sample(self, rng: random.Random) -> Prompt:
        """One prompt, drawn from `rng` only (so a seed fixes a dataset)."""

    def reward(self, prompt: Prompt, completion: str) -> float:
        """In [0, 1]: the fraction of the answer's positions the completion gets right, over the longer of
        the two (dense enough for a small model to climb; 1 only for an exact answer)."""
        return char_accuracy(completion, prompt.answer)

    def is_correct(self, prompt: Prompt, completion: str) -> bool:
        return completion == prompt.answer

    def prompts(self, count: int, seed: int) -> list[Prompt]:
        rng = random.Random(seed)
        return [self.sample(rng) for _ in range(count)]


def char_accuracy(completion: str, answer: str) -> float:
    longest = max(len(completion), len(answer))
    if longest == 0:
        return 1.0
    return sum(a == b for a, b in zip(completion, answer, strict=False)) / longest
