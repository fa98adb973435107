"""Sum-rate sweep over SNR: configuration, batched simulation, CSV and plot.

One channel draw and one IQ draw per realisation (IQ parameters are redrawn with every channel);
every precoder is evaluated on the same draws, with ideal IQ and with the IQI. Draws are processed in
chunks of `chunk` realisations as (chunk, …) arrays: no Python loop runs per draw.
"""

import csv
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from foundry.mimo import channel, iq_imbalance, metrics, precoders
from foundry.mimo.iq_imbalance import ThetaLaw
from foundry.mimo.precoders import Normalization

IQ_MODES = ("ideal", "iqi")


class SweepConfig(BaseModel):
    """A sum-rate-vs-SNR experiment. Every default lives here (the CLI passes only what it is given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bs_antennas: int = Field(64, ge=1, description="N, BS transmit antennas")
    users: int = Field(16, ge=1, description="K, number of users")
    user_antennas: int = Field(1, ge=1, description="M_k, antennas per user (all users alike)")
    sigma_theta_deg: float = Field(10.0, ge=0.0, le=45.0, description="σ_θ, phase mismatch, degrees")
    sigma_g: float = Field(0.1, ge=0.0, le=0.5, description="σ_g, gain mismatch (std of g_n)")
    theta_law: ThetaLaw = Field("variance", description="σ_θ as std ('variance') or half-width ('range')")
    snr_db: list[float] = Field([0, 5, 10, 15, 20, 25, 30], min_length=1,
                                description="ρ = P/σ_n² in dB, comma-separated")
    draws: int = Field(500, ge=1, description="channel + IQ realisations")
    precoders: list[str] = Field(["zf", "wl-zf", "mmse", "wl-mmse", "mf", "wl-mf"], min_length=1,
                                 description="comma-separated, from zf,mmse,mf,bd,wl-zf,wl-mmse,wl-mf,wl-bd")
    normalization: Normalization = Field("global", description="'global' β or 'per_stream'")
    rate: Literal["logdet", "per_stream"] = Field("logdet", description="joint Re/Im log-det or per stream")
    tx_correlation: float = Field(0.0, ge=0.0, lt=1.0, description="exponential ρ between BS antennas")
    rx_correlation: float = Field(0.0, ge=0.0, lt=1.0, description="exponential ρ between a user's antennas")
    seed: int = Field(0, description="random seed")
    chunk: int = Field(250, ge=1, description="draws per batched array (memory bound)")

    @field_validator("snr_db", "precoders", mode="before")
    @classmethod
    def _comma_separated(cls, v: Any) -> Any:
        """A command line gives lists as "a,b,c"."""
        return [t.strip().lower() for t in v.split(",") if t.strip()] if isinstance(v, str) else v

    @field_validator("precoders")
    @classmethod
    def _known_precoders(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in precoders.PRECODERS]
        if unknown:
            raise ValueError(
                f"unknown precoder(s) {', '.join(unknown)}; valid: {', '.join(precoders.PRECODERS)}"
            )
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _feasible(self) -> "SweepConfig":
        m = self.users * self.user_antennas
        needs_rank = [p for p in self.precoders if p.removeprefix("wl-") in ("zf", "bd")]
        if needs_rank and m > self.bs_antennas:
            raise ValueError(
                f"users × user_antennas = {m} exceeds bs_antennas = {self.bs_antennas}: "
                f"{', '.join(needs_rank)} need bs_antennas ≥ users × user_antennas"
            )
        if self.rate == "per_stream" and self.user_antennas > 1:
            raise ValueError(
                "rate = 'per_stream' needs user_antennas = 1 (use 'logdet' for multi-antenna users)"
            )
        return self

    @property
    def num_streams(self) -> int:
        return self.users * self.user_antennas


def simulate(cfg: SweepConfig) -> dict[tuple[str, str], np.ndarray]:
    """Sum rate of every (precoder, iq mode) on every draw: {(name, "ideal"|"iqi"): (S, draws)}."""
    rng = np.random.default_rng(cfg.seed)
    snr = 10 ** (np.asarray(cfg.snr_db, dtype=float) / 10)
    out = {(p, iq): np.empty((snr.size, cfg.draws)) for p in cfg.precoders for iq in IQ_MODES}
    for start in range(0, cfg.draws, cfg.chunk):
        stop = min(start + cfg.chunk, cfg.draws)
        H, G = draw(cfg, rng, stop - start)
        grams = gram_products(G)
        for name in cfg.precoders:
            for iq, r in rates_over_snr(cfg, name, H, G, snr, grams).items():
                out[name, iq][:, start:stop] = r
    return out


def draw(cfg: SweepConfig, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One batch of channels H (B, M, N) and effective real channels {"ideal": H̄, "iqi": H̄Ā}."""
    H = channel.user_correlated(
        rng, batch, cfg.users, cfg.user_antennas, cfg.bs_antennas, cfg.tx_correlation, cfg.rx_correlation
    )
    g, theta = iq_imbalance.draw_iq_params(
        rng, batch, cfg.bs_antennas, cfg.sigma_g, np.deg2rad(cfg.sigma_theta_deg), cfg.theta_law
    )
    a1, a2 = iq_imbalance.iq_coefficients(g, theta, cfg.sigma_g)
    return H, {"ideal": iq_imbalance.effective_channel(H), "iqi": iq_imbalance.effective_channel(H, a1, a2)}


def gram_products(G: dict[str, np.ndarray]) -> dict[tuple[bool, str], tuple[np.ndarray, np.ndarray]]:
    """(A, W) for `precoders.gram_gains`, keyed by (is WL, IQ mode): conventional precoders are built on
    H̄ = G["ideal"], WL ones on the G they are evaluated on. Three (2M×2N)·(2N×2M) products per batch."""
    Hbar = G["ideal"]
    W_ideal = Hbar @ np.swapaxes(Hbar, -1, -2)
    out = {}
    for iq, Gm in G.items():
        W_wl = W_ideal if iq == "ideal" else Gm @ np.swapaxes(Gm, -1, -2)
        A_conv = W_ideal if iq == "ideal" else Gm @ np.swapaxes(Hbar, -1, -2)
        out[False, iq] = (A_conv, W_ideal)
        out[True, iq] = (W_wl, W_wl)
    return out


def rates_over_snr(
    cfg: SweepConfig,
    name: str,
    H: np.ndarray,
    G: dict[str, np.ndarray],
    snr: np.ndarray,
    grams: dict | None = None,
) -> dict[str, np.ndarray]:
    """Sum rate (S, B) of one precoder at every linear SNR, for each effective channel in G (by IQ mode).

    ZF/MMSE/MF go through `precoders.gram_gains` (no 2N×2M precoder is formed; MMSE gets all SNRs from
    one eigendecomposition); BD builds its precoder, once for the conventional version (it depends on H
    only) and once per G for WL-BD. Rates for all SNRs come from one broadcast `metrics` call.
    """
    wl, base = name.startswith("wl-"), name.removeprefix("wl-")
    grams = grams if grams is not None else gram_products(G)
    noise = (1.0 / snr)[:, None]  # [S, 1]: broadcasts against the batch axis
    shared = None
    if base == "bd" and not wl:
        shared = precoders.build(name, H, G["ideal"], 1.0, cfg.user_antennas)  # from H alone
    rates = {}
    for iq, Gm in G.items():
        if base == "bd":
            P = precoders.build(name, H, Gm, 1.0, cfg.user_antennas) if wl else shared
            E = Gm @ precoders.normalize(P, cfg.normalization)  # [B, 2M, 2M]
        else:
            A, W = grams[wl, iq]
            E = precoders.gram_gains(base, A, W, cfg.num_streams / snr, cfg.normalization)  # [(S,) B, 2M, 2M]
        if cfg.rate == "logdet":
            rates[iq] = metrics.sum_rate(E, noise, cfg.user_antennas)
        else:
            rates[iq] = metrics.stream_sum_rate(E, noise)
    return rates


def summarize(cfg: SweepConfig, rates: dict[tuple[str, str], np.ndarray]) -> list[dict]:
    """Rows {precoder, iq, snr_db, sum_rate, std_err, draws}: mean over draws and its standard error."""
    rows = []
    for (name, iq), r in rates.items():
        sem = r.std(axis=1, ddof=1) / np.sqrt(r.shape[1]) if r.shape[1] > 1 else np.zeros(r.shape[0])
        for snr_db, mean, err in zip(cfg.snr_db, r.mean(axis=1), sem, strict=True):
            rows.append(
                {
                    "precoder": name,
                    "iq": iq,
                    "snr_db": float(snr_db),
                    "sum_rate": float(mean),
                    "std_err": float(err),
                    "draws": cfg.draws,
                }
            )
    return rows


def run(cfg: SweepConfig) -> list[dict]:
    """`simulate` then `summarize`."""
    return summarize(cfg, simulate(cfg))


def write_csv(rows: list[dict], path: Path) -> None:
    """One line per (precoder, iq, snr_db)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(cfg: SweepConfig, rows: list[dict], path: Path) -> None:
    """Sum rate vs SNR: one colour per precoder, solid = ideal IQ, dashed = with IQI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, name in enumerate(cfg.precoders):
        for iq, style in (("ideal", "-"), ("iqi", "--")):
            pts = [(r["snr_db"], r["sum_rate"]) for r in rows if r["precoder"] == name and r["iq"] == iq]
            x, y = zip(*pts, strict=True)
            marker = "o" if name.startswith("wl-") else "s"
            ax.plot(x, y, style, marker=marker, ms=4, color=f"C{i}", label=f"{name} ({iq})")
    ax.set_xlabel("SNR ρ (dB)")
    ax.set_ylabel("sum rate (bit/s/Hz)")
    ax.set_title(
        f"N={cfg.bs_antennas}, K={cfg.users}×{cfg.user_antennas}, σθ={cfg.sigma_theta_deg:g}°, "
        f"σg={cfg.sigma_g:g}, {cfg.draws} draws"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
