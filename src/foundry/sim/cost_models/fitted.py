"""The linear step-time model and its fit: prefill A + B·Σl + C·Σl², decode a + b·Σctx + c·batch.

This is the form of DistServe's simulator (and LoongServe's prefill model), extended to the mixed
steps our policies run (decodes beside prefill chunks): a mixed step pays the prefill formula plus
each decode's own terms, without a second intercept:

    prefill present:  t = A + B·Σl + C·Σl² + b·Σctx_dec + c·n_dec
    decode only:      t = a + b·Σctx + c·n_dec

(Σl² is `BatchFeatures.sum_prefill_sq`, l² for a fresh prompt.) An optional second decode row applies
at batch sizes >= `large_batch_threshold` (DistServe fits small and large batches apart).

`fit` solves for (A, B, C, a, b, c) jointly by non-negative least squares from `(BatchFeatures, seconds)`
samples: the engine's steps recorded by `RecordingPolicy`, or a `Profile` from `foundry serve profile`.
Two weightings: ``absolute`` (plain least squares; keeps the total time right, which is what queueing
depends on, when step times are noisy and right-skewed as on a shared CPU; the default for engine
steps) and ``relative`` (each row divided by its time, as LoongServe's fit; for profiles whose points
span orders of magnitude). The report gives the mean relative error and Σpredicted / Σmeasured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from foundry.serve.profile import Profile
from foundry.sim.batch import BatchFeatures, decode_features, prefill_features
from foundry.sim.cost_models.base import CostModel

Coefs = tuple[float, float, float]


@dataclass(frozen=True)
class FitReport:
    num_samples: int
    mean_rel_error: float
    p90_rel_error: float
    max_rel_error: float
    total_ratio: float  # Σ predicted / Σ measured
    weighting: str

    def __str__(self) -> str:
        return (f"{self.weighting} fit over {self.num_samples} steps: "
                f"mean |rel. error| {self.mean_rel_error:.1%}, "
                f"p90 {self.p90_rel_error:.1%}, max {self.max_rel_error:.1%}; "
                f"total predicted/measured {self.total_ratio:.3f}")


@dataclass
class LinearCostModel(CostModel):
    """Times in seconds. `prefill` = (A, B, C), `decode` = (a, b, c)."""

    prefill: Coefs
    decode: Coefs
    decode_large: Coefs | None = None
    large_batch_threshold: int | None = None
    name: str = "linear"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for label, coefs in (("prefill", self.prefill), ("decode", self.decode)):
            if len(coefs) != 3:
                raise ValueError(f"{label}: expected 3 coefficients, got {coefs}")
        if (self.decode_large is None) != (self.large_batch_threshold is None):
            raise ValueError("decode_large: give it together with large_batch_threshold")

    def predict(self, f: BatchFeatures) -> float:
        if f.num_prefill_seqs:
            A, B, C = self.prefill
            _, b, c = self.decode
            return A + B * f.sum_prefill_tokens + C * f.sum_prefill_sq + b * f.sum_decode_context \
                + c * f.num_decode_seqs
        if f.num_decode_seqs:
            a, b, c = self.decode
            if self.large_batch_threshold is not None and f.num_decode_seqs >= self.large_batch_threshold:
                a, b, c = self.decode_large  # type: ignore[misc]
            return a + b * f.sum_decode_context + c * f.num_decode_seqs
        return 0.0

    # ---- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, samples: list[tuple[BatchFeatures, float]], name: str = "fitted",
            meta: dict[str, Any] | None = None,
            weighting: str = "absolute") -> tuple[LinearCostModel, FitReport]:
        if weighting not in ("absolute", "relative"):
            raise ValueError(f"weighting: must be 'absolute' or 'relative', got {weighting!r}")
        rows, times = [], []
        for f, t in samples:
            if f.is_empty or not t > 0:
                continue
            if f.num_prefill_seqs:
                rows.append([1.0, f.sum_prefill_tokens, f.sum_prefill_sq, 0.0, f.sum_decode_context,
                             f.num_decode_seqs])
            else:
                rows.append([0.0, 0.0, 0.0, 1.0, f.sum_decode_context, f.num_decode_seqs])
            times.append(t)
        if len(times) < 6:
            raise ValueError(f"samples: need at least 6 non-empty steps to fit 6 coefficients, "
                             f"got {len(times)}")
        X, y = np.asarray(rows, dtype=float), np.asarray(times, dtype=float)
        w = 1 / y if weighting == "relative" else np.ones_like(y)  # relative: Σ ((x·θ - t) / t)²
        Xw = X * w[:, None]
        scale = np.maximum(np.abs(Xw).max(axis=0), 1e-300)  # column scaling for conditioning
        theta, _ = nnls(Xw / scale, y * w)
        theta = theta / scale
        A, B, C, a, b, c = (float(v) for v in theta)
        model = cls((A, B, C), (a, b, c), name=name, meta=dict(meta or {}))
        pred = X @ theta
        rel = np.abs(pred - y) / y
        report = FitReport(len(y), float(rel.mean()), float(np.percentile(rel, 90)), float(rel.max()),
                           float(pred.sum() / y.sum()), weighting)
        model.meta["fit"] = report.__dict__
        return model, report

    @classmethod
    def fit_runs(cls, runs: list[list[tuple[BatchFeatures, float]]], name: str = "fitted",
                 meta: dict[str, Any] | None = None) -> tuple[LinearCostModel, FitReport, list[float]]:
        """One model from several calibration runs, robust to a run taken while the machine ran slower.

        The shape (the six coefficients' proportions) is the absolute fit to all runs' steps pooled;
        its level is then set so that the *median* run's total time is right. On a shared CPU a whole
        run can be 1.5x slower than the next; such a run pulls a pooled fit by its share of the steps
        but moves the median little. Returns the model, the pooled fit's report and each run's
        Σmeasured / Σpredicted under the pooled fit (the median of these is the applied factor).
        """
        if not runs:
            raise ValueError("runs: need at least one calibration run")
        pooled, report = cls.fit([s for run in runs for s in run], name=name, meta=meta)
        ratios = [sum(t for _, t in run) / max(sum(pooled.predict(f) for f, _ in run), 1e-300)
                  for run in runs]
        model = pooled.scaled(float(np.median(ratios)))
        model.meta["run_ratios"] = ratios
        return model, report, ratios

    def scaled(self, factor: float) -> LinearCostModel:
        """Every step `factor` times as long (all coefficients scaled)."""
        if not factor > 0:
            raise ValueError(f"factor: must be > 0, got {factor}")

        def times(c: Coefs | None) -> Coefs | None:
            return None if c is None else (c[0] * factor, c[1] * factor, c[2] * factor)

        return LinearCostModel(times(self.prefill), times(self.decode), times(self.decode_large),
                               self.large_batch_threshold, self.name, dict(self.meta))

    @classmethod
    def fit_profile(cls, profile: Profile) -> tuple[LinearCostModel, FitReport]:
        """Fit to a `foundry serve profile` file: batch-1 prefills, and decodes at one context length.

        A profile varies the decode batch at one context, so it cannot separate b·Σctx from c·batch;
        the fit attributes the per-request slope to whichever term the least squares prefers.
        """
        ctx = int(profile.meta.get("decode_context", 64))
        samples = [(prefill_features(n), t) for n, t in zip(profile.prefill_lens, profile.prefill_times,
                                                             strict=True)]
        samples += [(decode_features(b, ctx), t) for b, t in zip(profile.decode_batches, profile.decode_times,
                                                                 strict=True)]
        return cls.fit(samples, name="fitted-profile", meta={"source": "profile", **profile.meta},
                       weighting="relative")

    # ---- files ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"kind": "linear-cost-model", "name": self.name, "prefill": list(self.prefill),
                "decode": list(self.decode), "decode_large": None if self.decode_large is None
                else list(self.decode_large), "large_batch_threshold": self.large_batch_threshold,
                "meta": self.meta}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LinearCostModel:
        large = d.get("decode_large")
        return cls(tuple(d["prefill"]), tuple(d["decode"]), None if large is None else tuple(large),
                   d.get("large_batch_threshold"), d.get("name", "fitted"), dict(d.get("meta", {})))

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "prefill_A_B_C": list(self.prefill),
                                  "decode_a_b_c": list(self.decode)}
        if self.decode_large is not None:
            out["decode_large"] = list(self.decode_large)
            out["large_batch_threshold"] = self.large_batch_threshold
        return out


def samples_to_json(samples: list[tuple[BatchFeatures, float]], meta: dict[str, Any]) -> dict[str, Any]:
    """Calibration samples as plain data (`kind: step-samples`), the input of `fitted:FILE`."""
    return {"kind": "step-samples", "fields": ["num_prefill_seqs", "sum_prefill_tokens", "sum_prefill_sq",
                                               "num_decode_seqs", "sum_decode_context", "seconds"],
            "samples": [[*f.as_list(), t] for f, t in samples], "meta": meta}


def samples_from_json(d: dict[str, Any]) -> list[tuple[BatchFeatures, float]]:
    return [(BatchFeatures(*(int(v) for v in row[:5])), float(row[5])) for row in d["samples"]]


KINDS = ("step samples (kind: step-samples), a fitted cost model (kind: linear-cost-model) or a "
         "`foundry serve profile` file")


def load_fitted(path: str | Path) -> tuple[LinearCostModel, FitReport | None]:
    """A cost model from a coefficients file, a step-samples file, or a `foundry serve profile` file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"cost: no such file {str(p)!r}")
    try:
        d = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"cost: {str(p)!r} is not a JSON file; expected {KINDS}") from None
    kind = d.get("kind") if isinstance(d, dict) else None
    try:
        if kind == "linear-cost-model":
            return LinearCostModel.from_dict(d), None
        if kind == "step-samples":
            return LinearCostModel.fit(samples_from_json(d), name=f"fitted:{p.name}", meta=d.get("meta", {}))
        if isinstance(d, dict) and "prefill_lens" in d:
            return LinearCostModel.fit_profile(Profile.load(p))
    except (KeyError, TypeError, IndexError, ValueError) as e:
        what = f"{e!r}" if isinstance(e, KeyError) else str(e)
        raise ValueError(f"cost: {str(p)!r} is not a valid {kind or 'profile'} file ({what})") from None
    raise ValueError(f"cost: {str(p)!r} is neither a cost model, step samples nor a serve profile; "
                     f"expected {KINDS}")
