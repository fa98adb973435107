"""Open-loop arrival processes: when each request of a benchmark is sent.

Inter-arrival gaps are Gamma distributed with shape ``1/cv**2`` and scale ``cv**2/rate`` (the
parametrisation used by FastServe's and Vidur's load generators): the mean gap is ``1/rate`` and the
coefficient of variation of the gaps is ``cv``. ``cv = 1`` is a Poisson process; ``cv > 1`` is burstier.
"""

from __future__ import annotations

import numpy as np


def gamma_gaps(rate: float, cv: float, num: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``num`` inter-arrival gaps (seconds) with mean ``1/rate`` and coefficient of variation ``cv``."""
    if not rate > 0:
        raise ValueError(f"rate: must be > 0 requests/s, got {rate}")
    if not cv > 0:
        raise ValueError(f"cv: must be > 0, got {cv}")
    if num < 0:
        raise ValueError(f"num: must be >= 0, got {num}")
    shape = 1.0 / cv**2
    scale = cv**2 / rate
    return rng.gamma(shape, scale, size=num)


def arrival_times(
    rate: float,
    num: int,
    *,
    cv: float = 1.0,
    duration: float | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Arrival times (seconds from the start) of at most ``num`` requests, the first at t = 0.

    ``rate = inf`` sends everything at once (a closed batch). With ``duration``, arrivals at or after
    ``duration`` are dropped.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    if rate == float("inf"):
        times = np.zeros(num)
    else:
        gaps = gamma_gaps(rate, cv, num, rng)
        times = np.concatenate([[0.0], np.cumsum(gaps[:-1])]) if num > 0 else np.zeros(0)
    if duration is not None:
        if not duration > 0:
            raise ValueError(f"duration: must be > 0 seconds, got {duration}")
        times = times[times < duration]
    return times


def coefficient_of_variation(samples: np.ndarray) -> float:
    """Sample standard deviation over sample mean (ddof = 1)."""
    samples = np.asarray(samples, dtype=float)
    if samples.size < 2:
        raise ValueError(f"samples: need at least 2 values, got {samples.size}")
    return float(samples.std(ddof=1) / samples.mean())
