"""SamplingParams: how one request samples and when it stops; `n` samples of one prompt."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

MAX_LOGPROBS = 20


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0  # 0 means greedy
    top_k: int = -1  # <= 0 disables
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    logprobs: int | None = None  # top alternatives reported per sampled token, 0..20
    return_output_logprobs: bool = False  # keep every output token's logprob (RequestOutput.output_logprobs)
    n: int = 1  # samples of the prompt: one prefill, shared KV blocks (ids: `sample_request_ids`)

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0

    def validate(self) -> None:
        """Raise ValueError whose message starts with the offending field's name."""
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"n: must be an integer >= 1, got {self.n!r}")
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool) or self.max_tokens < 1:
            raise ValueError(f"max_tokens: must be an integer >= 1, got {self.max_tokens!r}")
        if not isinstance(self.temperature, int | float) or not self.temperature >= 0:
            raise ValueError(f"temperature: must be >= 0, got {self.temperature!r}")
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool):
            raise ValueError(f"top_k: must be an integer, got {self.top_k!r}")
        if not isinstance(self.top_p, int | float) or not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p: must be in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise ValueError(f"seed: must be an integer or None, got {self.seed!r}")
        if not isinstance(self.stop, list) or not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError(f"stop: must be a list of non-empty strings, got {self.stop!r}")
        if not isinstance(self.stop_token_ids, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in self.stop_token_ids
        ):
            raise ValueError(
                f"stop_token_ids: must be a list of non-negative integers, got {self.stop_token_ids!r}"
            )
        if not isinstance(self.return_output_logprobs, bool):
            raise ValueError(f"return_output_logprobs: must be a bool, got {self.return_output_logprobs!r}")
        if self.logprobs is not None and (
            not isinstance(self.logprobs, int) or isinstance(self.logprobs, bool)
            or not 0 <= self.logprobs <= MAX_LOGPROBS
        ):
            raise ValueError(
                f"logprobs: must be an integer in [0, {MAX_LOGPROBS}] or None, got {self.logprobs!r}"
            )


def sample_request_ids(request_id: str, n: int) -> list[str]:
    """The engine request ids of `n` samples of request `request_id`: itself when n = 1, else `{id}-{j}`."""
    return [request_id] if n == 1 else [f"{request_id}-{j}" for j in range(n)]


def sample_params(params: SamplingParams, j: int) -> SamplingParams:
    """Sample j's own params: one sample, and seed `seed + j` when seeded (the samples differ but are
    reproducible: sample j equals a single request with that seed)."""
    seed = None if params.seed is None else params.seed + j
    return replace(params, n=1, seed=seed)
