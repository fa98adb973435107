"""Reverse a string: `abcd=` -> `dcba`. The control task: the output length equals the input's, so a
length ranker has nothing to learn and lengths are not heavy-tailed."""

from __future__ import annotations

import random

from foundry.rl.tasks.base import Prompt, Task

ALPHABET = "abcdefgh"


class Reverse(Task):
    name = "reverse"

    def __init__(self, min_len: int = 2, max_len: int = 12, max_new_tokens: int = 24) -> None:
        self.min_len, self.max_len, self.max_new_tokens = min_len, max_len, max_new_tokens

    def sample(self, rng: random.Random) -> Prompt:
        s = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(self.min_len, self.max_len)))
        return Prompt(s + "=", s[::-1])
