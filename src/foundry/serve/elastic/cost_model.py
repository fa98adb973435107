"""LoongServe's cost model for elastic sequence parallelism (ESP): prefill, decode and migration times.

Prefill on a ring of ``k`` instances (degree of sequence parallelism ``k``) takes

    T_k(lengths) = A_k + B_k·Σl + C_k·Σl²   seconds,

fitted per ``k`` by weighted least squares on the *relative* error with weight ``t^0.1``
(LoongServe, ``test/longserve/2-find-time-function-prefill.py``; serving.md §3.3). LoongServe's
scheduler uses only these prefill models, a constant decode time and a bandwidth migration time
(serving.md §3.3, §3.4 Step 2a). The decode model here, ``a + b·Σctx + c·batch`` for one instance's
share of a multi-master decode, is a simulator's addition: LoongServe's scheduler never uses one.

Torch-free; the fit uses numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FIT_WEIGHT_EXPONENT = 0.1  # LoongServe's weight t^0.1 on each sample's relative error (serving.md §3.3)


@dataclass(frozen=True, slots=True)
class PrefillCoeffs:
    """``T(Σl, Σl²) = a + b·Σl + c·Σl²`` seconds for one degree of sequence parallelism."""

    a: float
    b: float
    c: float

    def time(self, sum_len: float, sum_sq: float) -> float:
        return self.a + self.b * sum_len + self.c * sum_sq


@dataclass(frozen=True, slots=True)
class DecodeCoeffs:
    """One instance's share of a decode iteration: ``a + b·Σctx + c·batch`` seconds, where ``Σctx``
    counts the KV tokens the instance holds for the batch and ``batch`` the queries it attends for."""

    a: float
    b: float
    c: float

    def time(self, num_requests: int, sum_ctx: int) -> float:
        return self.a + self.b * sum_ctx + self.c * num_requests


@dataclass(frozen=True, slots=True)
class PrefillSample:
    """One measured prefill: a batch with ``Σl = sum_len`` and ``Σl² = sum_sq`` on ``degree`` instances."""

    degree: int
    sum_len: int
    sum_sq: int
    seconds: float

    @classmethod
    def of(cls, degree: int, lengths: Sequence[int], seconds: float) -> PrefillSample:
        return cls(degree, sum(lengths), sum(n * n for n in lengths), seconds)


@dataclass(frozen=True, slots=True)
class FitStats:
    """How well one degree's fit matches its samples (relative errors |pred − t| / t)."""

    num_samples: int
    mean_rel_err: float
    max_rel_err: float


@dataclass(frozen=True)
class PrefillFit:
    coeffs: dict[int, PrefillCoeffs]
    report: dict[int, FitStats]


@dataclass(frozen=True)
class ESPCostModel:
    """Times (seconds) for an elastic cluster's scheduler and simulator.

    Parameters
    ----------
    prefill
        Degree of sequence parallelism ``k`` → its ``A_k, B_k, C_k``.
    decode
        One instance's decode share (a simulator's model; see the module docstring).
    kv_bytes_per_token
        KV bytes of one token on one instance (LWM-7B / Llama-2-7B: 2·32·32·128·2 B = 0.5 MiB).
    bandwidth
        Bytes per second of a KV migration between instances (LoongServe: 400 GB/s per TP rank,
        so 400 GB/s · TP for an instance of TP ranks, serving.md §3.4 Step 2a).
    """

    prefill: Mapping[int, PrefillCoeffs]
    decode: DecodeCoeffs = field(default_factory=lambda: DecodeCoeffs(0.0, 0.0, 0.0))
    kv_bytes_per_token: float = 0.5 * 2**20
    bandwidth: float = 400 * 2**30

    def __post_init__(self) -> None:
        if not self.prefill:
            raise ValueError("ESPCostModel: need prefill coefficients for at least one degree")
        bad = [k for k in self.prefill if not isinstance(k, int) or k < 1]
        if bad:
            raise ValueError(f"ESPCostModel: degrees of sequence parallelism must be ints >= 1, got {bad}")
        if self.kv_bytes_per_token < 0 or self.bandwidth <= 0:
            raise ValueError("ESPCostModel: need kv_bytes_per_token >= 0 and bandwidth > 0")

    @property
    def degrees(self) -> tuple[int, ...]:
        return tuple(sorted(self.prefill))

    def prefill_time(self, k: int, sum_len: int, sum_sq: int) -> float:
        """``T_k`` for a batch with ``Σl = sum_len`` and ``Σl² = sum_sq`` on ``k`` instances."""
        try:
            coeffs = self.prefill[k]
        except KeyError:
            raise ValueError(f"no prefill model for SP degree {k} (have {self.degrees})") from None
        return coeffs.time(sum_len, sum_sq)

    def prefill_time_of(self, k: int, lengths: Iterable[int]) -> float:
        ls = list(lengths)
        return self.prefill_time(k, sum(ls), sum(n * n for n in ls))

    def decode_time(self, num_requests: int, sum_ctx: int) -> float:
        """One instance's share of a decode iteration; a multi-master batch lasts as long as the
        slowest of its instances (``max`` over them)."""
        return self.decode.time(num_requests, sum_ctx)

    def migration_time(self, tokens: int) -> float:
        return tokens * self.kv_bytes_per_token / self.bandwidth

    # -- (de)serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "prefill": {str(k): [c.a, c.b, c.c] for k, c in sorted(self.prefill.items())},
            "decode": [self.decode.a, self.decode.b, self.decode.c],
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "bandwidth": self.bandwidth,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ESPCostModel:
        return cls(prefill={int(k): PrefillCoeffs(*map(float, v)) for k, v in d["prefill"].items()},
                   decode=DecodeCoeffs(*map(float, d.get("decode", (0.0, 0.0, 0.0)))),
                   kv_bytes_per_token=float(d.get("kv_bytes_per_token", 0.5 * 2**20)),
                   bandwidth=float(d.get("bandwidth", 400 * 2**30)))


def fit_prefill(samples: Iterable[PrefillSample], degrees: Iterable[int] | None = None) -> PrefillFit:
    """Fit ``A_k, B_k, C_k`` per degree: least squares on ``w·(pred − t)/t`` with ``w = t^0.1``.

    Minimising the weighted relative error keeps short and long prefills (ms to minutes) equally
    important; the small weight leans slightly towards the long ones (LoongServe's recipe, §3.3).
    `degrees` names the degrees that must be fitted (each needs samples); by default every degree
    that has samples. Raises ValueError on empty input, non-positive or non-finite times, negative
    lengths, a degree without samples, or samples that cannot determine three coefficients.
    """
    by_k: dict[int, list[PrefillSample]] = {}
    for s in samples:
        if not (math.isfinite(s.seconds) and s.seconds > 0):
            raise ValueError(f"fit_prefill: prefill times must be positive and finite, got {s.seconds} "
                             f"(degree {s.degree}, Σl={s.sum_len})")
        if s.sum_len < 0 or s.sum_sq < 0:
            raise ValueError(f"fit_prefill: lengths must be non-negative, got Σl={s.sum_len}, Σl²={s.sum_sq}")
        if s.degree < 1:
            raise ValueError(f"fit_prefill: degree must be >= 1, got {s.degree}")
        by_k.setdefault(s.degree, []).append(s)
    wanted = sorted(by_k) if degrees is None else sorted(set(degrees))
    if not wanted:
        raise ValueError("fit_prefill: no samples")
    coeffs: dict[int, PrefillCoeffs] = {}
    report: dict[int, FitStats] = {}
    for k in wanted:
        ss = by_k.get(k, [])
        if not ss:
            raise ValueError(f"fit_prefill: no samples for SP degree {k}")
        x = np.array([[1.0, s.sum_len, s.sum_sq] for s in ss], dtype=np.float64)
        t = np.array([s.seconds for s in ss], dtype=np.float64)
        w = t**FIT_WEIGHT_EXPONENT
        # columns scaled so that lstsq sees numbers of one magnitude (Σl² reaches 1e11)
        scale = np.maximum(np.abs(x).max(axis=0), 1e-300)
        a = (x / scale) * (w / t)[:, None]
        if len(ss) < 3 or np.linalg.matrix_rank(a) < 3:
            raise ValueError(f"fit_prefill: SP degree {k} has {len(ss)} samples, which cannot determine "
                             "A, B, C (need at least three batches with different Σl and Σl²)")
        sol, *_ = np.linalg.lstsq(a, w, rcond=None)
        abc = sol / scale
        c = PrefillCoeffs(float(abc[0]), float(abc[1]), float(abc[2]))
        rel = np.abs((x @ abc - t) / t)
        coeffs[k] = c
        report[k] = FitStats(len(ss), float(rel.mean()), float(rel.max()))
    return PrefillFit(coeffs, report)
