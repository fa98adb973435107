"""Speculative decoding: cheap draft tokens, verified by one forward pass of the target model.

A decode step normally computes one token per request. With speculation the engine first proposes up
to k draft tokens d1..dk for a decoding request, then runs the target over [last token, d1..dk] at once
(a k+1-token chunk over the paged KV) and keeps the longest prefix of drafts the target agrees with,
plus one token of its own: 1 to k+1 tokens for one target pass. The KV slots of rejected drafts are
given back (`BlockManager.truncate`). This module is torch-free (the config and the proposer).

- Proposers: a small draft model run greedily (`draft_model.DraftModelProposer`), or prompt lookup
  (`NgramProposer`): find the latest earlier occurrence of the request's last
  n tokens (n from `max_n` down to `min_n`) in its prompt and output, and propose what followed it. No
  second model; it pays off when outputs copy their context (extraction, code edits, summaries).
- Verification (`sampler.verify_drafts`): greedy requests keep drafts while they equal the target's
  argmax, so the output is exactly plain greedy decoding. Sampled requests use rejection sampling against the
  proposer's one-hot distribution: accept d with probability p(d), else draw from p with d removed and
  renormalised; every emitted token is then distributed exactly as the target's own sampling
  (Leviathan et al. 2023; Chen et al. 2023).
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SpeculativeConfig(BaseModel):
    """`EngineConfig.speculative` (flat names `speculative_*`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    flat_prefix: ClassVar[str] = "speculative_"

    method: Literal["ngram", "draft"] | None = Field(
        None, description="draft proposer: 'ngram' (prompt lookup, no second model) or 'draft' (a small "
        "model); unset: off"
    )
    draft_model: str = Field("foundry-small-draft", description="the draft model of method 'draft' "
                             "(same tokenizer as the target)")
    num_tokens: int = Field(4, ge=1, le=16, description="draft tokens proposed per step (k)")
    ngram_max: int = Field(3, ge=1, description="longest suffix n-gram looked up")
    ngram_min: int = Field(1, ge=1, description="shortest suffix n-gram looked up")
    adaptive: bool | None = Field(
        None, description="measure seconds per decoded token with and without drafts and draft only while "
        "it is faster (the other way probed after 16, then 64, then every 256 all-decode steps); unset: on "
        "for 'draft' (its drafting costs a draft-model forward per token), off for 'ngram' (a lookup costs "
        "~nothing, and min_acceptance already stops drafts that keep being rejected)"
    )
    min_acceptance: float = Field(
        0.3, ge=0, le=1, description="stop drafting for a request whose recent share of kept drafts falls "
        "below this (it is probed again every 16 steps); 0: always draft"
    )

    @property
    def speed_guard(self) -> bool:
        """Whether the engine measures drafting against plain decoding (`adaptive`, or its default)."""
        return self.adaptive if self.adaptive is not None else self.method == "draft"

    @model_validator(mode="after")
    def _ngram_range(self) -> SpeculativeConfig:
        if self.ngram_min > self.ngram_max:
            raise ValueError(f"ngram_min: {self.ngram_min} exceeds ngram_max {self.ngram_max}")
        return self


class Proposer(Protocol):
    def propose_batch(self, wants: dict[str, tuple[list[int], int]]) -> dict[str, list[int]]:
        """`wants[request_id] = (its tokens, at most how many drafts)` -> drafts per request."""
        ...


class SpeedGuard:
    """Speculation only while it pays: moving averages of seconds per decoded token over all-decode steps
    with drafts and without, the cheaper way chosen and the other one probed now and then (drafting is
    first tried after `probe_every` plain steps: a batch too short to repay the try never pays it). A
    probe that confirms the choice quadruples the wait before the next (from `probe_every` up to
    `max_probe_every` steps: a probe costs a step the slower way, and a draft model's catch-up), one that
    overturns it resets the wait."""

    def __init__(self, probe_every: int = 16, alpha: float = 0.3, max_probe_every: int = 256) -> None:
        self.probe_every, self.alpha, self.max_probe_every = probe_every, alpha, max_probe_every
        self.cost: dict[bool, float] = {}  # drafted? -> seconds per token
        self.interval = probe_every  # steps between probes now
        self.since = 0  # recorded steps since the last probe
        self._probe: bool | None = None  # the preferred way when the coming step is a probe

    def speculate(self) -> bool:
        if False not in self.cost:  # plain decoding first: trying drafts costs (a draft model's prefill)
            return False
        better = True in self.cost and self.cost[True] <= self.cost[False]
        self._probe = better if self.since >= self.interval else None
        return (not better) if self._probe is not None else better

    def record(self, drafted: bool, seconds: float, tokens: int) -> None:
        per = seconds / max(1, tokens)
        old = self.cost.get(drafted)
        self.cost[drafted] = per if old is None else (1 - self.alpha) * old + self.alpha * per
        if self._probe is None or len(self.cost) < 2:
            self.since += 1
            return
        confirmed = (self.cost[True] <= self.cost[False]) == self._probe
        self.interval = min(4 * self.interval, self.max_probe_every) if confirmed else self.probe_every
        self.since, self._probe = 0, None


class AcceptanceGuard:
    """Speculation turns itself off for a request whose drafts keep being rejected (a verification
    chunk costs more than a plain decode), and probes it again every `probe_every` decode steps."""

    def __init__(self, min_acceptance: float, probe_every: int = 16, alpha: float = 0.5) -> None:
        self.min_acceptance, self.probe_every, self.alpha = min_acceptance, probe_every, alpha
        self.recent: dict[str, float] = {}  # request id -> moving average of kept / proposed drafts
        self.skipped: dict[str, int] = {}

    def allows(self, request_id: str) -> bool:
        if self.recent.get(request_id, 1.0) >= self.min_acceptance:
            return True
        n = self.skipped.get(request_id, 0) + 1
        self.skipped[request_id] = 0 if n >= self.probe_every else n
        return n >= self.probe_every

    def record(self, request_id: str, proposed: int, kept: int) -> None:
        share = kept / proposed if proposed else 0.0
        self.recent[request_id] = (1 - self.alpha) * self.recent.get(request_id, share) + self.alpha * share

    def keep_only(self, request_ids: set[str]) -> None:
        """Forget requests that are gone (called now and then: the tables stay small)."""
        for table in (self.recent, self.skipped):
            for rid in [r for r in table if r not in request_ids]:
                del table[rid]


class NgramProposer:
    def __init__(self, k: int, max_n: int = 3, min_n: int = 1) -> None:
        self.k, self.max_n, self.min_n = k, max_n, min_n

    def propose_batch(self, wants: dict[str, tuple[list[int], int]]) -> dict[str, list[int]]:
        """`wants[request_id] = (its tokens, at most how many drafts)` -> the drafts found."""
        found = {rid: self.propose(tokens, k) for rid, (tokens, k) in wants.items()}
        return {rid: d for rid, d in found.items() if d}

    def propose(self, tokens: list[int], k: int | None = None) -> list[int]:
        """Up to `k` tokens that followed the latest earlier occurrence of the longest matching suffix."""
        k = self.k if k is None else k
        if k <= 0:
            return []
        for n in range(min(self.max_n, len(tokens) - 1), self.min_n - 1, -1):
            suffix = tokens[-n:]
            for start in range(len(tokens) - n - 1, -1, -1):  # latest first, never the suffix itself
                if tokens[start:start + n] == suffix:
                    return tokens[start + n:start + n + k]
        return []
