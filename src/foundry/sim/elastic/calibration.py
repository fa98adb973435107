"""LWM-7B on A800: step-time models per parallel layout, fitted to LoongServe's published points.

Source of every measured number: the LoongServe artifact's notebooks (SOSP'24, arXiv 2404.09526), as
tabulated in the serving reference §3.8: prefill ms and decode ms per iteration for six (batch, length)
points under SP1·TP8, SP2·TP4 and SP4·TP2 on 8 A800-80GB GPUs, plus one SP1·TP1 point. Everything
else here is **derived** (labelled so in `StepModel.derived` and in `describe()`):

- Prefill ``T = A + B·Σl + C·Σl²`` (LoongServe's form, §3.3). B and C are fitted by non-negative least
  squares on relative error weighted by t^0.1 (LoongServe's weighting). The six points are batches of
  1-512 requests that each take 5-54 s, so the intercept A is not identifiable from them (any A from
  5 to 190 ms fits within 3%): A is **set** to the layout's decode intercept a, i.e. one iteration's
  fixed cost (launches, collectives' latency, scheduling) is assumed the same for prefill and decode.
- Decode ``t = a + b·Σctx + c·batch``, fitted the same way (relative error) to the decode column.
- Layouts that were not measured scale the per-token terms by the GPUs doing the work, keeping the
  intercept: SP k·TP2 on 2k GPUs from SP4·TP2 (B, C times 4/k; decode b, c likewise per instance);
  one TP4 instance from SP2·TP4 (times 2); a 4-GPU decode group from SP1·TP8 (times 2). Ring attention's
  striping balances the causal work, so the quadratic term splits like the linear one.
- Migration (and KV transfer): 0.5 MiB per token (32 layers · 2 · 32 heads · 128 · 2 B) over
  400 GB/s per TP rank (§3.4 step 2a).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls

from foundry.serve.elastic.cost_model import DecodeCoeffs, ESPCostModel, PrefillCoeffs
from foundry.sim.cost_models.fitted import LinearCostModel

# (batch, prompt length) of the published points; 1k = 1,000 as in the profiling grid (§3.3).
POINTS: tuple[tuple[int, int], ...] = ((512, 1_000), (128, 5_000), (64, 10_000), (16, 50_000), (4, 100_000),
                                        (1, 500_000))
# layout -> (prefill ms, decode ms) per point, in POINTS order. Serving reference §3.8 [AE].
PUBLISHED_MS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "sp1-tp8": ((7757, 10157, 10792, 19506, 13546, 51135), (38.9, 37.8, 36.4, 42.9, 26.4, 37.6)),
    "sp2-tp4": ((5776, 7694, 8306, 16595, 12147, 51700), (42.5, 40.3, 38.1, 44.9, 28.0, 41.6)),
    "sp4-tp2": ((5267, 7072, 7701, 15744, 11798, 53606), (42.3, 41.4, 40.1, 45.9, 28.9, 37.8)),
}
TP1_POINT_MS = (1, 1_000, 68.9, 13.0)  # SP1·TP1, batch 1, 1000-token prompt: prefill, decode (§3.8)

KV_BYTES_PER_TOKEN = 2 * 32 * 32 * 128 * 2  # K and V, 32 layers, 32 heads of 128, fp16: 0.5 MiB
MIGRATION_BYTES_PER_S_PER_RANK = 400e9  # LoongServe's migration-time constant (§3.4, 2a)

# KV slots per instance (LoongServe AE `max_total_token_num`, §3.5)
KV_CAPACITY = {1: 110_000, 2: 210_000, 4: 500_000, 8: 900_000}  # by TP degree


def kv_seconds_per_token(tp: int) -> float:
    """Seconds to move one token's KV between instances of tensor-parallel degree `tp`."""
    return KV_BYTES_PER_TOKEN / (MIGRATION_BYTES_PER_S_PER_RANK * tp)


@dataclass(frozen=True)
class PointError:
    layout: str
    phase: str  # "prefill" | "decode"
    batch: int
    length: int
    published_ms: float
    fitted_ms: float

    @property
    def rel_error(self) -> float:
        return (self.fitted_ms - self.published_ms) / self.published_ms


@dataclass(frozen=True)
class StepModel:
    """One parallel layout's iteration times, in seconds: prefill (A, B, C) and decode (a, b, c)."""

    layout: str
    num_gpus: int
    prefill: tuple[float, float, float]
    decode: tuple[float, float, float]
    derived: str = ""  # how it was derived from a fitted layout; "" = fitted to published points
    errors: tuple[PointError, ...] = field(default=(), compare=False)

    def prefill_time(self, sum_len: float, sum_sq: float) -> float:
        A, B, C = self.prefill
        return A + B * sum_len + C * sum_sq

    def decode_time(self, batch: int, sum_ctx: float) -> float:
        a, b, c = self.decode
        return a + b * sum_ctx + c * batch

    def scaled(self, factor: float, layout: str, num_gpus: int, how: str) -> StepModel:
        """Per-token terms times `factor` (intercepts kept): the same work on fewer or more GPUs."""
        A, B, C = self.prefill
        a, b, c = self.decode
        return StepModel(layout, num_gpus, (A, B * factor, C * factor), (a, b * factor, c * factor),
                         derived=f"{how} (derived)")

    def as_linear_cost_model(self) -> LinearCostModel:
        """The same coefficients as the existing simulator's cost model (chunked / mixed steps)."""
        return LinearCostModel(self.prefill, self.decode, name=f"lwm-7b-a800-{self.layout}",
                               meta={"source": "LoongServe §3.8 calibration points", "derived": self.derived})

    def describe(self) -> dict[str, object]:
        return {"layout": self.layout, "num_gpus": self.num_gpus, "prefill_A_B_C_s": list(self.prefill),
                "decode_a_b_c_s": list(self.decode), "derived": self.derived or "fitted (B, C, a, b, c); "
                "A = a (derived)"}


def _nnls_rel(X: np.ndarray, y: np.ndarray, weight_power: float) -> np.ndarray:
    w = y ** weight_power / y  # relative error, times t^weight_power
    Xw = X * w[:, None]
    scale = np.maximum(np.abs(Xw).max(axis=0), 1e-300)
    theta, _ = nnls(Xw / scale, y * w)
    return theta / scale


def fit_layout(layout: str) -> StepModel:
    """Fit one measured layout (``sp1-tp8``, ``sp2-tp4``, ``sp4-tp2``) to its six published points."""
    if layout not in PUBLISHED_MS:
        raise ValueError(f"layout: expected one of {', '.join(PUBLISHED_MS)}, got {layout!r}")
    prefill_ms, decode_ms = (np.asarray(v, dtype=float) for v in PUBLISHED_MS[layout])
    b_ = np.array([b for b, _ in POINTS], dtype=float)
    l_ = np.array([n for _, n in POINTS], dtype=float)
    a, bd, cd = _nnls_rel(np.column_stack([np.ones_like(b_), b_ * l_, b_]), decode_ms, 0.0)
    A = a  # not identifiable from these points: one iteration's fixed cost, as decode's (see module doc)
    B, C = _nnls_rel(np.column_stack([b_ * l_, b_ * l_ * l_]), prefill_ms - A, 0.1)
    model = StepModel(layout, 8, (float(A) / 1e3, float(B) / 1e3, float(C) / 1e3),
                      (float(a) / 1e3, float(bd) / 1e3, float(cd) / 1e3))
    errors = []
    for (batch, n), p, d in zip(POINTS, prefill_ms, decode_ms, strict=True):
        errors.append(PointError(layout, "prefill", batch, n, float(p),
                                 model.prefill_time(batch * n, batch * n * n) * 1e3))
        errors.append(PointError(layout, "decode", batch, n, float(d),
                                 model.decode_time(batch, batch * n) * 1e3))
    return StepModel(model.layout, 8, model.prefill, model.decode, errors=tuple(errors))


@dataclass(frozen=True)
class LWM7BA800:
    """The fitted layouts and the ones derived from them, built once."""

    sp1_tp8: StepModel
    sp2_tp4: StepModel
    sp4_tp2: StepModel

    @classmethod
    def fit(cls) -> LWM7BA800:
        return cls(fit_layout("sp1-tp8"), fit_layout("sp2-tp4"), fit_layout("sp4-tp2"))

    def tp2_instance(self) -> StepModel:
        """One TP2 instance alone (SP1·TP2): SP4·TP2's per-token terms times 4 (derived)."""
        return self.sp4_tp2.scaled(4.0, "sp1-tp2", 2, "SP4·TP2 per-token terms x4")

    def tp4_instance(self) -> StepModel:
        """One TP4 instance (DistServe's prefill side): SP2·TP4's per-token terms times 2 (derived)."""
        return self.sp2_tp4.scaled(2.0, "sp1-tp4", 4, "SP2·TP4 per-token terms x2")

    def four_gpu_decode(self) -> StepModel:
        """A 4-GPU decode group (DistServe's TP2·PP2 side): SP1·TP8's per-token terms times 2 (derived)."""
        return self.sp1_tp8.scaled(2.0, "tp2-pp2", 4, "SP1·TP8 per-token terms x2 (4 of 8 GPUs)")

    def errors(self) -> list[PointError]:
        return [e for m in (self.sp1_tp8, self.sp2_tp4, self.sp4_tp2) for e in m.errors]

    def tp1_check(self) -> tuple[float, float]:
        """SP1·TP1 batch-1 1000-token prefill and decode (ms) predicted from SP4·TP2 scaled x8, to put
        beside the published 68.9 / 13.0 ms: a check of the derivation, not a fitted point."""
        m = self.sp4_tp2.scaled(8.0, "sp1-tp1", 1, "x8")
        _, n, _, _ = TP1_POINT_MS
        return m.prefill_time(n, n * n) * 1e3, m.decode_time(1, n) * 1e3


def esp_cost_model(models: LWM7BA800, instance_tp: int) -> ESPCostModel:
    """The elastic cluster's costs for instances of TP `instance_tp`: 2 (four instances, SP degrees 1-4,
    LoongServe's AE deployment) or 8 (one instance, SP1·TP8). Degree k of TP2 instances scales SP4·TP2's
    per-token terms by 4/k (k = 4 is the fitted model itself; 1-3 are derived); one instance's decode
    share is SP4·TP2's decode with per-token terms x4 (derived)."""
    if instance_tp == 2:
        A, B, C = models.sp4_tp2.prefill
        prefill = {k: PrefillCoeffs(A, B * 4 / k, C * 4 / k) for k in (1, 2, 3, 4)}
        decode = DecodeCoeffs(*models.tp2_instance().decode)
    elif instance_tp == 8:
        prefill = {1: PrefillCoeffs(*models.sp1_tp8.prefill)}
        decode = DecodeCoeffs(*models.sp1_tp8.decode)
    else:
        raise ValueError(f"instance_tp: expected 2 or 8, got {instance_tp}")
    return ESPCostModel(prefill, decode, float(KV_BYTES_PER_TOKEN),
                        MIGRATION_BYTES_PER_S_PER_RANK * instance_tp)


def fit_table(models: LWM7BA800) -> str:
    """The per-point fit error as a markdown table."""
    rows = ["| layout | phase | (batch, length) | published ms | fitted ms | rel. error |",
            "|---|---|---|---|---|---|"]
    for e in models.errors():
        rows.append(f"| {e.layout} | {e.phase} | ({e.batch}, {e.length}) | {e.published_ms:g} | "
                    f"{e.fitted_ms:.1f} | {e.rel_error:+.1%} |")
    return "\n".join(rows)
