"""Run-length decoding: `a3b12c1=` -> `aaabbbbbbbbbbbbc`.

The output length is the sum of the counts, which the prompt states only in digits spread over the
prompt: a length ranker reading the prompt has something to learn, and the policy's own mistakes add
noise on top. Counts are log-normal (a heavy tail: median ~3, a few tens), so a batch's lengths are
skewed the way long reasoning traces are.
"""

from __future__ import annotations

import math
import random

from foundry.rl.tasks.base import Prompt, Task

LETTERS = "abcdefgh"


class RunLengthDecoding(Task):
    name = "rle"

    def __init__(self, max_runs: int = 4, max_count: int = 40, mu: float = 1.0, sigma: float = 1.0,
                 max_new_tokens: int = 96, name: str = "rle") -> None:
        self.name = name
        self.max_runs, self.max_count, self.mu, self.sigma = max_runs, max_count, mu, sigma
        self.max_new_tokens = max_new_tokens

    def sample(self, rng: random.Random) -> Prompt:
        runs, last = [], ""
        for _ in range(rng.randint(1, self.max_runs)):
            letter = rng.choice([c for c in LETTERS if c != last])  # neighbours differ: one decoding
            count = min(self.max_count, max(1, math.ceil(rng.lognormvariate(self.mu, self.sigma))))
            runs.append((letter, count))
            last = letter
        while sum(c for _, c in runs) > self.max_new_tokens - 1:  # the answer and EOS fit the cap
            letter, count = runs[-1]
            runs[-1] = (letter, count - 1) if count > 1 else runs.pop()
        text = "".join(f"{letter}{count}" for letter, count in runs) + "="
        return Prompt(text, "".join(letter * count for letter, count in runs))
