"""The standard figure set (reference §5): what `foundry mimo figures` draws.

1. sum_rate.png   — ZF, MMSE, MF and their WL versions, N = 64, K = 16, σ_θ = 10°, σ_g = 0.1: ideal IQ,
                    IQI-unaware (conventional precoder through the IQI) and WL with IQI; the §4 ceiling.
2. bd.png         — BD vs WL-BD, N = 32, 8 users × 2 antennas, same IQI.
3. ber.png        — uncoded BER vs SNR, N = 32, K = 16 (N/K = 2 makes the IQI visible), QPSK and 16-QAM.
4. power_loss.png — WL-ZF loss ΔL∞ (dB) vs load M/N at N = 64: closed form (lines) over Monte-Carlo.
Each figure also writes the numbers it plots as CSV beside the PNG.
"""

import csv
from pathlib import Path

import numpy as np

from foundry.mimo import analysis, channel, iq_imbalance, metrics, precoders
from foundry.mimo.sweep import SweepConfig, simulate

SIGMA_THETA_DEG, SIGMA_G = 10.0, 0.1
SNR_DB = [0, 5, 10, 15, 20, 25, 30]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _rate_panels(cfg: SweepConfig, families: list[str], out: Path, stem: str) -> list[Path]:
    rates = {k: v.mean(axis=1) for k, v in simulate(cfg).items()}
    ceiling = analysis.iqi_unaware_rate_ceiling(
        cfg.bs_antennas, cfg.num_streams, cfg.sigma_g, np.deg2rad(cfg.sigma_theta_deg), cfg.theta_law
    )
    plt = _plt()
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.8), squeeze=False)
    for ax, base in zip(axes[0], families, strict=True):
        wl = f"wl-{base}"
        ax.plot(cfg.snr_db, rates[base, "ideal"], "k-", label=f"{base.upper()}, ideal IQ")
        ax.plot(cfg.snr_db, rates[wl, "ideal"], "kx", ms=7, label=f"WL-{base.upper()}, ideal IQ")
        ax.plot(cfg.snr_db, rates[base, "iqi"], "r--s", ms=4, label=f"{base.upper()}, IQI-unaware")
        ax.plot(cfg.snr_db, rates[wl, "iqi"], "b-o", ms=4, label=f"WL-{base.upper()}, with IQI")
        if base in ("zf", "mmse"):  # the §4 ceiling is derived for single-antenna ZF/MMSE
            ax.axhline(ceiling, color="gray", ls=":", label=f"§4 ceiling {ceiling:.0f}")
        ax.set_title(f"{base.upper()} vs WL-{base.upper()}")
        ax.set_xlabel("SNR ρ (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("sum rate (bit/s/Hz)")
    fig.suptitle(
        f"N={cfg.bs_antennas}, {cfg.users} users × {cfg.user_antennas}, σθ={cfg.sigma_theta_deg:g}°, "
        f"σg={cfg.sigma_g:g}, {cfg.draws} draws",
        fontsize=9,
    )
    fig.tight_layout()
    png = out / f"{stem}.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    rows = [
        [p, iq, s, f"{r:.4f}"] for (p, iq), v in rates.items() for s, r in zip(cfg.snr_db, v, strict=True)
    ]
    _write(out / f"{stem}.csv", ["precoder", "iq", "snr_db", "sum_rate"], rows)
    return [png]


def sum_rate_figure(out: Path, draws: int, seed: int) -> list[Path]:
    cfg = SweepConfig(
        bs_antennas=64,
        users=16,
        sigma_theta_deg=SIGMA_THETA_DEG,
        sigma_g=SIGMA_G,
        snr_db=SNR_DB,
        draws=draws,
        precoders=["zf", "wl-zf", "mmse", "wl-mmse", "mf", "wl-mf"],
        seed=seed,
    )
    return _rate_panels(cfg, ["zf", "mmse", "mf"], out, "sum_rate")


def bd_figure(out: Path, draws: int, seed: int) -> list[Path]:
    cfg = SweepConfig(
        bs_antennas=32,
        users=8,
        user_antennas=2,
        sigma_theta_deg=SIGMA_THETA_DEG,
        sigma_g=SIGMA_G,
        snr_db=SNR_DB,
        draws=draws,
        precoders=["bd", "wl-bd"],
        seed=seed,
    )
    return _rate_panels(cfg, ["bd"], out, "bd")


BER_CURVES = [("zf", "ideal"), ("zf", "iqi"), ("wl-zf", "iqi"), ("mmse", "iqi"), ("wl-mmse", "iqi")]


def ber_figure(out: Path, draws: int, seed: int, num_symbols: int = 100) -> list[Path]:
    """BER at N = 32, K = 16; `draws` channels × 16 users × `num_symbols` symbols per point."""
    rng = np.random.default_rng(seed)
    n, k = 32, 16
    snr_db = np.arange(0.0, 27.5, 2.5)
    H = channel.rayleigh(rng, draws, k, n)
    g, theta = iq_imbalance.draw_iq_params(rng, draws, n, SIGMA_G, np.deg2rad(SIGMA_THETA_DEG))
    a1, a2 = iq_imbalance.iq_coefficients(g, theta, SIGMA_G)
    G = {"ideal": iq_imbalance.effective_channel(H), "iqi": iq_imbalance.effective_channel(H, a1, a2)}
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.8))
    rows = []
    styles = ["k-", "r--s", "b-o", "m--^", "c-d"]
    for ax, mod in zip(axes, ("qpsk", "16qam"), strict=True):
        for (name, iq), style in zip(BER_CURVES, styles, strict=True):
            curve = []
            for s in snr_db:
                rho = 10 ** (s / 10)
                E = G[iq] @ precoders.normalize(precoders.build(name, H, G[iq], rho))
                curve.append(metrics.ber(E, 1 / rho, mod, num_symbols, rng))
                rows.append([mod, name, iq, s, f"{curve[-1]:.3e}"])
            label = f"{name.upper()}, " + (
                "ideal IQ" if iq == "ideal" else ("IQI" if "wl" in name else "IQI-unaware")
            )
            ax.semilogy(
                snr_db, np.where(np.array(curve) > 0, curve, np.nan), style, ms=4, label=label
            )  # 0 = no errors seen
        ax.set_ylim(0.5 / (draws * k * num_symbols * 4), 0.5)
        ax.set_title(f"{mod.upper()}, N={n}, K={k}, σθ={SIGMA_THETA_DEG:g}°, σg={SIGMA_G:g}", fontsize=9)
        ax.set_xlabel("SNR ρ (dB)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("uncoded BER")
    fig.tight_layout()
    png = out / "ber.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    _write(out / "ber.csv", ["modulation", "precoder", "iq", "snr_db", "ber"], rows)
    return [png]


LOSS_SETTINGS = [(10.0, 0.1), (15.0, 0.15), (0.0, 0.2), (20.0, 0.0)]


def power_loss_figure(out: Path, draws: int, seed: int, num_tx: int = 64) -> list[Path]:
    """ΔL∞ of WL-ZF (equal power per stream), paired Monte-Carlo vs `analysis.wl_zf_power_loss`."""
    rng = np.random.default_rng(seed)
    loads = np.array([4, 8, 16, 24, 32, 40, 48])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    rows = []
    dense = np.arange(1, num_tx * 0.8)
    for i, (theta_deg, sg) in enumerate(LOSS_SETTINGS):
        theta = np.deg2rad(theta_deg)
        closed = [
            analysis.wl_zf_power_loss(num_tx, int(m), sg, theta) * analysis.DB_PER_3DB_UNIT for m in dense
        ]
        ax.plot(dense / num_tx, closed, "-", color=f"C{i}", label=f"σθ={theta_deg:g}°, σg={sg:g}")
        for m in loads:
            H = channel.rayleigh(rng, draws, int(m), num_tx)
            g, th = iq_imbalance.draw_iq_params(rng, draws, num_tx, sg, theta)
            a1, a2 = iq_imbalance.iq_coefficients(g, th, sg)
            diff = analysis.empirical_power_offset(
                iq_imbalance.effective_channel(H, a1, a2)
            ) - analysis.empirical_power_offset(iq_imbalance.effective_channel(H))
            mc = diff.mean() * analysis.DB_PER_3DB_UNIT
            err = diff.std(ddof=1) / np.sqrt(draws) * analysis.DB_PER_3DB_UNIT
            pred = analysis.wl_zf_power_loss(num_tx, int(m), sg, theta) * analysis.DB_PER_3DB_UNIT
            ax.errorbar(m / num_tx, mc, yerr=2 * err, fmt="o", color=f"C{i}", ms=4)
            rows.append([theta_deg, sg, num_tx, int(m), f"{mc:.4f}", f"{err:.4f}", f"{pred:.4f}"])
    ax.set_xlabel("load M/N")
    ax.set_ylabel("WL-ZF power loss ΔL∞ (dB)")
    ax.set_title(f"closed form (lines) vs Monte-Carlo (dots, ±2 s.e.), N={num_tx}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = out / "power_loss.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    _write(
        out / "power_loss.csv",
        ["sigma_theta_deg", "sigma_g", "N", "M", "mc_db", "mc_std_err_db", "closed_db"],
        rows,
    )
    return [png]


def standard_set(out: Path, draws: int = 200, seed: int = 0) -> list[Path]:
    """All four figures into `out`; runtime grows linearly with `draws`."""
    out = Path(out)
    paths = []
    paths += sum_rate_figure(out, draws, seed)
    paths += bd_figure(out, draws, seed + 1)
    paths += ber_figure(out, draws, seed + 2)
    paths += power_loss_figure(out, draws, seed + 3)
    return paths
