"""StreamRL's length ranker (reference `rl.md` §2.4, §7): a small model that reads a prompt and scores how
long its output will be, trained online on (prompt, observed length) pairs as an RL run produces them.

The encoder is the engine's own `LlamaModel` at a tiny size, run densely over the prompt's bytes (the
policy's tokenizer); its per-token states are **summed** and a linear head maps the sum to `z`, a
predicted log length. Summing is the inductive bias that output length adds up over a prompt's parts (a
run-length count, a character to reverse); on run-length decoding it reached recall@20% ~0.9 in a
budget where mean or last-token pooling stayed near 0.6 (a mean must recover the token count elsewhere).

Loss, on minibatches drawn from a bounded replay buffer of the most recent pairs:

- pairwise logistic (RankNet) on `z_i - z_j` over every pair whose lengths differ, weighted by their
  log-length gap capped at 1: ranking is what the dispatcher needs, near-ties (the pairs noise flips)
  count little, and no pair, a runaway length's included, counts more than a clearly ordered one;
- plus `0.3 x` Huber loss of `z` against `log L`: a dense per-prompt signal that makes learning much
  faster (RLE recall@20% after 12 updates: ~0.65 on pairs alone, ~0.88 with it), and keeps `exp(z)` a
  length estimate in tokens (the dispatcher wants non-negative, length-like scores); Huber rather than
  squared error so a length at the generation cap pulls with bounded force.

`scores` runs an exponential moving average of the weights (decay 0.9 per step): with noisy labels and a
high learning rate the raw weights jitter from step to step; the average measured Kendall tau +0.01 to
+0.03 over 3 seeds at no cost in learning speed.

Before the first update `scores` is the prompt's token count, a real prior (exact for reversal, Kendall
tau ~0.6 on run-length decoding); from the first update on it is the model's `exp(z)`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from foundry.llm.config import ModelConfig
from foundry.llm.layers.attention import AttentionMetadata
from foundry.llm.models.llama import LlamaModel
from foundry.rl.model import policy_tokenizer

PAIR_WEIGHT_CAP = 1.0  # a pair's weight: its log-length gap, at most this
REGRESSION_WEIGHT = 0.3
EMA_DECAY = 0.9  # per optimizer step, for the weights `scores` uses


class _Net(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder = LlamaModel(cfg)
        self.head = nn.Linear(cfg.hidden_size, 1)

    def forward(self, seqs: list[list[int]]) -> torch.Tensor:
        """One packed dense run over all prompts -> z per prompt [B]."""
        lens = [len(s) for s in seqs]
        ids = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
        positions = torch.cat([torch.arange(n) for n in lens])
        hidden = self.encoder(ids, positions, None, AttentionMetadata.dense(lens))  # [T, H]
        owner = torch.repeat_interleave(torch.arange(len(seqs)), torch.tensor(lens))
        pooled = torch.zeros(len(seqs), hidden.shape[1]).index_add_(0, owner, hidden)  # sum per prompt
        return self.head(pooled)[:, 0]


def pairwise_loss(z: torch.Tensor, log_len: torch.Tensor) -> torch.Tensor:
    """RankNet logistic loss over pairs of different lengths, weighted by their log-length gap (capped)."""
    diff = log_len[:, None] - log_len[None, :]  # > 0 where i is longer than j
    weight = diff.clamp(min=0, max=PAIR_WEIGHT_CAP)  # each unordered pair once, ties get weight 0
    total = weight.sum()
    if total == 0:
        return z.sum() * 0.0
    return (weight * F.softplus(-(z[:, None] - z[None, :]))).sum() / total


class LengthRanker:
    """Scores prompts by predicted output length (higher = longer), learning online from observed lengths.

    `update` appends the pairs to a replay buffer of the `buffer` most recent ones and takes
    `updates_per_batch` Adam steps on minibatches of `minibatch` drawn from it. Everything is seeded by
    `seed`, so two rankers fed the same updates give the same scores.
    """

    def __init__(self, seed: int = 0, hidden: int = 64, layers: int = 2, lr: float = 1e-2,
                 buffer: int = 2048, updates_per_batch: int = 16, minibatch: int = 32,
                 max_tokens: int = 128) -> None:
        self.tokenizer = policy_tokenizer()
        self.max_tokens = max_tokens
        self.buffer_size, self.updates_per_batch, self.minibatch = buffer, updates_per_batch, minibatch
        cfg = ModelConfig(vocab_size=self.tokenizer.vocab_size, hidden_size=hidden,
                          intermediate_size=hidden * 2, num_layers=layers, num_heads=4, num_kv_heads=4,
                          max_position_embeddings=max_tokens)
        with torch.random.fork_rng():  # a seeded init that leaves the caller's global RNG alone
            torch.manual_seed(seed)
            self.net = _Net(cfg)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)  # what `scores` runs
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=0.0)
        self.generator = torch.Generator().manual_seed(seed)  # minibatch draws
        self.buffer_prompts: list[str] = []
        self.buffer_lengths: list[float] = []
        self.steps = 0  # optimizer steps taken

    def _encode(self, prompts: list[str]) -> list[list[int]]:
        seqs = [self.tokenizer.encode(p, add_special_tokens=False)[:self.max_tokens] for p in prompts]
        return [s or [self.tokenizer.eos_token_id] for s in seqs]  # an empty prompt still gets a row

    @torch.no_grad()
    def scores(self, prompts: list[str]) -> list[float]:
        """Predicted length in tokens per prompt (>= 0); the prompt's token count before any update."""
        if not prompts:
            return []
        seqs = self._encode(prompts)
        if self.steps == 0:
            return [float(len(s)) for s in seqs]
        return [math.exp(min(z, 50.0)) for z in self.ema(seqs).tolist()]

    def order(self, prompts: list[str]) -> list[int]:
        """Indices of `prompts`, longest predicted first; equal scores keep their input order."""
        s = self.scores(prompts)
        return sorted(range(len(prompts)), key=lambda i: (-s[i], i))

    def update(self, prompts: list[str], lengths: list[float]) -> dict[str, float]:
        """Learn from observed output lengths (a group's mean, say; below 1 counts as 1). Returns the mean
        losses over this call's steps, the buffer size and the total step count."""
        if len(prompts) != len(lengths):
            raise ValueError(f"lengths: need one per prompt ({len(prompts)}), got {len(lengths)}")
        self.buffer_prompts = (self.buffer_prompts + list(prompts))[-self.buffer_size:]
        self.buffer_lengths = (self.buffer_lengths + [float(x) for x in lengths])[-self.buffer_size:]
        n = len(self.buffer_prompts)
        if n < 2:
            return {"loss": 0.0, "pair_loss": 0.0, "reg_loss": 0.0, "buffer": float(n),
                    "steps": float(self.steps)}
        totals = {"loss": 0.0, "pair_loss": 0.0, "reg_loss": 0.0}
        for _ in range(self.updates_per_batch):
            pick = torch.randperm(n, generator=self.generator)[:self.minibatch].tolist()
            z = self.net(self._encode([self.buffer_prompts[i] for i in pick]))
            log_len = torch.tensor([math.log(max(1.0, self.buffer_lengths[i])) for i in pick])
            pair = pairwise_loss(z, log_len)
            reg = F.smooth_l1_loss(z, log_len)  # Huber: a runaway length pulls with bounded force
            loss = pair + REGRESSION_WEIGHT * reg
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():
                for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
                    e.lerp_(p, 1.0 - EMA_DECAY)
            self.steps += 1
            for key, value in (("loss", loss), ("pair_loss", pair), ("reg_loss", reg)):
                totals[key] += value.item() / self.updates_per_batch
        return {**totals, "buffer": float(n), "steps": float(self.steps)}

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of weights (raw and averaged), optimizer, RNG and replay buffer: tensors and plain
        values only, so `torch.load(..., weights_only=True)` reads it back and a resumed ranker continues
        identically."""
        return copy.deepcopy({"net": self.net.state_dict(), "ema": self.ema.state_dict(),
                              "optimizer": self.optimizer.state_dict(),
                              "generator": self.generator.get_state(), "buffer_prompts": self.buffer_prompts,
                              "buffer_lengths": self.buffer_lengths, "steps": self.steps})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.buffer_prompts = list(state["buffer_prompts"])
        self.buffer_lengths = [float(x) for x in state["buffer_lengths"]]
        self.steps = int(state["steps"])


def recall_at(scores: Sequence[float], lengths: Sequence[float], alpha: float = 0.2) -> float:
    """The fraction of the predicted top-k that is truly top-k, k = max(1, round(alpha * n)).

    Ties: the predicted top-k is the first k in `LengthRanker.order`'s order (higher score first, equal
    scores by index), what the controller would admit first; a prompt counts as truly top-k when its
    length is at least the k-th longest, so how a ranker orders prompts of equal length costs nothing
    (with index tie-breaking on both sides, a perfect ranker of reversal's tied lengths would score ~0.9).
    """
    n = len(scores)
    if n != len(lengths) or n == 0:
        raise ValueError(f"scores/lengths: need equal, non-zero sizes, got {n} and {len(lengths)}")
    k = max(1, round(alpha * n))
    top_pred = sorted(range(n), key=lambda i: (-scores[i], i))[:k]
    kth_longest = sorted(lengths, reverse=True)[k - 1]
    return sum(lengths[i] >= kth_longest for i in top_pred) / k


def kendall_tau(scores: Sequence[float], lengths: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((pairs - ties_x) * (pairs - ties_y)).

    A pair tied in either sequence is neither concordant nor discordant; tau-b divides by the pairs
    untied in each sequence. NaN when either sequence is constant (as scipy returns).
    """
    n = len(scores)
    if n != len(lengths):
        raise ValueError(f"scores/lengths: need equal sizes, got {n} and {len(lengths)}")
    concordant = discordant = untied_x = untied_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = (scores[i] > scores[j]) - (scores[i] < scores[j])
            dy = (lengths[i] > lengths[j]) - (lengths[i] < lengths[j])
            untied_x += dx != 0
            untied_y += dy != 0
            concordant += dx * dy > 0
            discordant += dx * dy < 0
    if untied_x == 0 or untied_y == 0:
        return math.nan
    return (concordant - discordant) / math.sqrt(untied_x * untied_y)
