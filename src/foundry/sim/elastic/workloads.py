"""Length distributions that look like LoongServe's four datasets and its Zipf recipe; Poisson arrivals.

No dataset text or per-request data is used: each distribution is built from published summary
statistics, and where those are missing the assumption is stated here (and moved in the benchmark's
sensitivity rows). Sources are the serving reference §3.6 unless named otherwise.

- **ShareGPT-like.** LoongServe's filter: conversations of >= 3 turns, prompt = a random number >= 1 of
  leading turns, output = the next turn, both >= 4 tokens, total < 200k, output < 1000. The token
  histogram after that filter was not published. *Assumption*: prompt log-normal, median 700 tokens,
  sigma 1.0 (mean ~1,150: a multi-turn prefix is several single turns of a few hundred tokens); output
  log-normal, median 180, sigma 0.9, clipped to [4, 999].
- **LEval-like.** "Mainstream long-context benchmarks such as LEval average 5k-21k" (LV-Eval's
  abstract). *Assumption*: prompt log-normal with 10th/90th percentiles at 5k/21k tokens (median 10.2k,
  sigma 0.56, mean ~12k); output (an answer) log-normal, median 64, sigma 0.8, clipped to [4, 999].
- **LV-Eval-like.** Five length levels of 16k/32k/64k/128k/256k words, 102,380 words on average,
  11,896-387,406 (LV-Eval's README). *Assumption*: levels equally likely; within a level the word
  count is the level times a log-uniform factor on [0.74, 1.40] (minimum 0.74 x 16k = 11.8k words; mean
  1.035 x 99.2k = 102.7k words); 1.3 tokens per English word (Llama tokenizer, an assumption); output
  log-normal, median 32, sigma 0.8, clipped to [4, 999].
- **Mixed.** LoongServe draws 1,500 requests from each of the three: here an equal-probability mixture.
- **Zipf(alpha).** Prompt length x in [10, 200000) with density proportional to 1/x^alpha (beta = 0),
  each draw snapped to the nearest request of a real pool (LoongServe: of its datasets; here: of a
  20,000-request Mixed-like pool, whose output length it takes too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from foundry.serve.bench.arrivals import arrival_times
from foundry.serve.bench.workloads import RequestSpec, Workload

DATASETS = ("sharegpt", "leval", "lveval", "mixed")
ZIPF_ALPHAS = (1.0, 1.2, 1.4)
ZIPF_RANGE = (10, 200_000)
LVEVAL_LEVELS_WORDS = (16_000, 32_000, 64_000, 128_000, 256_000)


@dataclass(frozen=True)
class LengthParams:
    """The assumed shape of each dataset; `scale` multiplies prompt lengths (the sensitivity knob)."""

    sharegpt_prompt_median: float = 700.0
    sharegpt_prompt_sigma: float = 1.0
    sharegpt_output_median: float = 180.0
    leval_p10: float = 5_000.0
    leval_p90: float = 21_000.0
    leval_output_median: float = 64.0
    lveval_tokens_per_word: float = 1.3
    lveval_factor_range: tuple[float, float] = (0.74, 1.40)
    lveval_output_median: float = 32.0
    max_prompt_len: int | None = None  # a cap on every prompt (None: none beyond the datasets' own)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return rng.lognormal(math.log(median), sigma, size=n)


def _clip(x: np.ndarray, lo: int, hi: int | None) -> np.ndarray:
    out = np.maximum(lo, np.rint(x)).astype(np.int64)
    return out if hi is None else np.minimum(out, hi)


def sharegpt_like(n: int, rng: np.random.Generator, p: LengthParams) -> tuple[np.ndarray, np.ndarray]:
    out = _clip(_lognormal(rng, p.sharegpt_output_median, 0.9, n), 4, 999)
    prompt = _clip(_lognormal(rng, p.sharegpt_prompt_median, p.sharegpt_prompt_sigma, n), 4, None)
    return np.minimum(prompt, 199_999 - out), out  # total < 200k


def leval_like(n: int, rng: np.random.Generator, p: LengthParams) -> tuple[np.ndarray, np.ndarray]:
    z90 = 1.2815515655446004  # standard normal 90th percentile
    median = math.sqrt(p.leval_p10 * p.leval_p90)
    sigma = math.log(p.leval_p90 / p.leval_p10) / (2 * z90)
    return (_clip(_lognormal(rng, median, sigma, n), 16, None),
            _clip(_lognormal(rng, p.leval_output_median, 0.8, n), 4, 999))


def lveval_like(n: int, rng: np.random.Generator, p: LengthParams) -> tuple[np.ndarray, np.ndarray]:
    levels = rng.choice(np.asarray(LVEVAL_LEVELS_WORDS, dtype=float), size=n)
    lo, hi = p.lveval_factor_range
    factor = np.exp(rng.uniform(math.log(lo), math.log(hi), size=n))
    return (_clip(levels * factor * p.lveval_tokens_per_word, 16, None),
            _clip(_lognormal(rng, p.lveval_output_median, 0.8, n), 4, 999))


def mixed_like(n: int, rng: np.random.Generator, p: LengthParams) -> tuple[np.ndarray, np.ndarray]:
    which = rng.integers(0, 3, size=n)
    prompts, outputs = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for k, make in enumerate((sharegpt_like, leval_like, lveval_like)):
        idx = np.flatnonzero(which == k)
        if idx.size:
            prompts[idx], outputs[idx] = make(idx.size, rng, p)
    return prompts, outputs


def zipf_prompt_lengths(alpha: float, n: int, rng: np.random.Generator,
                        lo: int = ZIPF_RANGE[0], hi: int = ZIPF_RANGE[1]) -> np.ndarray:
    """Draws of x in [lo, hi) with density proportional to x^-alpha (inverse CDF of the continuous law)."""
    u = rng.random(n)
    if abs(alpha - 1.0) < 1e-12:
        x = lo * (hi / lo) ** u
    else:
        e = 1.0 - alpha
        x = (lo ** e + u * (hi ** e - lo ** e)) ** (1.0 / e)
    return np.minimum(np.floor(x).astype(np.int64), hi - 1)


def zipf_like(alpha: float, n: int, rng: np.random.Generator, p: LengthParams,
              pool_size: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Zipf prompt lengths, each snapped to the nearest prompt of a Mixed-like pool (taking its output)."""
    pool_p, pool_o = mixed_like(pool_size, rng, p)
    order = np.argsort(pool_p, kind="stable")
    pool_p, pool_o = pool_p[order], pool_o[order]
    want = zipf_prompt_lengths(alpha, n, rng)
    i = np.clip(np.searchsorted(pool_p, want), 1, pool_size - 1)
    nearer_left = (want - pool_p[i - 1]) <= (pool_p[i] - want)
    j = np.where(nearer_left, i - 1, i)
    return pool_p[j], pool_o[j]


def dataset_lengths(name: str, n: int, seed: int, params: LengthParams | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(prompt, output) lengths of `n` requests of dataset `name` (one of DATASETS, or ``zipf-1.2``)."""
    p = params or LengthParams()
    rng = np.random.default_rng(seed)
    if name.startswith("zipf-"):
        try:
            alpha = float(name.removeprefix("zipf-"))
        except ValueError:
            raise ValueError(f"dataset: expected zipf-ALPHA, got {name!r}") from None
        prompts, outputs = zipf_like(alpha, n, rng, p)
    elif name in DATASETS:
        prompts, outputs = {"sharegpt": sharegpt_like, "leval": leval_like, "lveval": lveval_like,
                            "mixed": mixed_like}[name](n, rng, p)
    else:
        raise ValueError(f"dataset: expected one of {', '.join(DATASETS)} or zipf-ALPHA, got {name!r}")
    if p.max_prompt_len is not None:
        prompts = np.minimum(prompts, p.max_prompt_len)
    return prompts, outputs


def dataset_workload(name: str, rate: float, n: int, seed: int = 0,
                     params: LengthParams | None = None) -> Workload:
    """`n` requests of dataset `name` arriving as a Poisson process at `rate` req/s, its times rescaled so
    that the last arrives at (n-1)/rate. Lengths and the gaps' shape depend on the seed only, so every
    rate of a sweep serves the same requests in the same pattern, compressed."""
    prompts, outputs = dataset_lengths(name, n, seed, params)
    times = arrival_times(rate, n, cv=1.0, rng=np.random.default_rng(seed + 1_000_003))
    if n > 1 and times[-1] > 0:  # rescaled so the run's mean rate is exactly `rate` (as LoongServe's client)
        times = times * ((n - 1) / rate) / times[-1]
    return Workload(name, tuple(RequestSpec(float(t), int(a), int(b))
                                for t, a, b in zip(times, prompts, outputs, strict=True)))


def describe(name: str, n: int = 20_000, seed: int = 0,
             params: LengthParams | None = None) -> dict[str, float]:
    """Summary statistics of a dataset's lengths (for the docs' table)."""
    prompts, outputs = dataset_lengths(name, n, seed, params)
    return {"prompt_mean": float(prompts.mean()), "prompt_p50": float(np.median(prompts)),
            "prompt_p90": float(np.percentile(prompts, 90)), "prompt_max": float(prompts.max()),
            "output_mean": float(outputs.mean()), "output_p50": float(np.median(outputs))}
