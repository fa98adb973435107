"""Batched sweep vs a straightforward per-draw loop, side by side in one run.

    OMP_NUM_THREADS=1 python benchmarks/mimo/bench_sweep.py   # N=64, K=16, 1000 draws, 7 SNRs, 8 precoders

Three implementations compute the same thing on the same draws (ideal IQ and IQI, all eight precoders,
log-det sum rate, global power normalisation) and the script checks that their per-draw rates agree:

- the batched sweep, `sweep.simulate` (Gram-form gains for ZF/MMSE/MF, all SNRs broadcast at once);
- the same batching with explicit precoders: form P̄, then E = G·P̄ and the rate, SNR by SNR;
- a per-draw loop, the code one would write first: for each draw and precoder, build the precoder from
  that draw's matrices (once, or once per SNR for (WL-)MMSE; a conventional precoder serves both IQ
  modes), then for each SNR sum the users' log-det rates one user at a time.

Drawing the random channels is timed in the batched sweep only (the other two get its draws).
"""

import argparse
import os
import time

import numpy as np

from foundry.mimo import sweep
from foundry.mimo.metrics import sum_rate
from foundry.mimo.precoders import PRECODERS, build, normalize
from foundry.mimo.real_valued import real_matrix, user_rows


def loop_precoder(name: str, h: np.ndarray, g: np.ndarray, rho: float) -> np.ndarray:
    """One draw: h (M, N) complex, g (2M, 2N) real → real precoder (2N, 2M), global β, unit power."""
    wl = name.startswith("wl-")
    x = g if wl else h
    xh = x.conj().T
    base = name.removeprefix("wl-")
    if base == "zf":
        p = xh @ np.linalg.inv(x @ xh)
    elif base == "mmse":
        p = xh @ np.linalg.inv(x @ xh + h.shape[0] / rho * np.eye(x.shape[0]))
    elif base == "mf":
        p = xh
    else:  # BD, single-antenna users: null space of the other users, then the SVD of the user's channel
        p = np.zeros_like(xh)
        for rows in user_rows(h.shape[0], 1, real=wl):
            others = np.setdiff1d(np.arange(x.shape[0]), rows)
            _, _, vh = np.linalg.svd(x[others])
            v0 = vh[len(others) :].conj().T
            _, _, v1h = np.linalg.svd(x[rows] @ v0)
            p[:, rows] = v0 @ v1h.conj().T[:, : len(rows)]
    pbar = p if wl else real_matrix(p)
    return pbar / np.sqrt(0.5 * np.sum(pbar**2))


def loop_rate(e: np.ndarray, noise_var: float) -> float:
    """One draw: Σ_k ½·log2 det(I + Q_k⁻¹S_k), user by user."""
    total = 0.0
    m = e.shape[0] // 2
    for rows in user_rows(m, 1, real=True):
        ek = e[rows]
        own = ek[:, rows]
        all_cov = 0.5 * ek @ ek.T + 0.5 * noise_var * np.eye(len(rows))
        interference = all_cov - 0.5 * own @ own.T
        total += 0.5 * np.log2(np.linalg.det(all_cov) / np.linalg.det(interference))
    return total


def loop_sweep(cfg: sweep.SweepConfig, H: np.ndarray, G: dict[str, np.ndarray]) -> dict:
    snr = 10 ** (np.asarray(cfg.snr_db) / 10)
    out = {(p, iq): np.empty((snr.size, H.shape[0])) for p in cfg.precoders for iq in sweep.IQ_MODES}
    for d in range(H.shape[0]):
        for name in cfg.precoders:
            cache: dict[str, np.ndarray] = {}  # conventional precoders serve both IQ modes
            for i, rho in enumerate(snr):
                for iq in sweep.IQ_MODES:
                    key = iq if name.startswith("wl-") else "shared"
                    if key not in cache or name.endswith("mmse"):  # only (WL-)MMSE depends on the SNR
                        cache[key] = loop_precoder(name, H[d], G[iq][d], rho)
                    out[name, iq][i, d] = loop_rate(G[iq][d] @ cache[key], 1 / rho)
    return out


def batched_explicit(cfg: sweep.SweepConfig, H: np.ndarray, G: dict[str, np.ndarray]) -> dict:
    """Batched over draws but without the Gram-form shortcut: form every precoder, then E = G·P̄, per SNR."""
    snr = 10 ** (np.asarray(cfg.snr_db) / 10)
    out = {(p, iq): np.empty((snr.size, H.shape[0])) for p in cfg.precoders for iq in sweep.IQ_MODES}
    for name in cfg.precoders:
        cache: dict[str, np.ndarray] = {}
        for i, rho in enumerate(snr):
            for iq in sweep.IQ_MODES:
                key = iq if name.startswith("wl-") else "shared"
                if key not in cache or name.endswith("mmse"):
                    cache[key] = normalize(build(name, H, G[iq], rho, cfg.user_antennas))
                out[name, iq][i] = sum_rate(G[iq] @ cache[key], 1 / rho)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--loop-draws", type=int, default=None, help="run the loop on fewer draws (default: all)")
    args = ap.parse_args()
    cfg = sweep.SweepConfig(
        bs_antennas=64,
        users=16,
        sigma_theta_deg=10,
        sigma_g=0.1,
        snr_db=[0, 5, 10, 15, 20, 25, 30],
        draws=args.draws,
        precoders=list(PRECODERS),
        seed=0,
        chunk=args.draws,
    )
    sizes = f"{cfg.draws} draws × {len(cfg.snr_db)} SNRs × {len(cfg.precoders)} precoders × 2 IQ modes"
    print(f"N=64, K=16, {sizes}")
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average before: {os.getloadavg()}")

    t0 = time.perf_counter()
    batched = sweep.simulate(cfg)
    t_batched = time.perf_counter() - t0
    print(f"batched sweep (sweep.simulate, incl. drawing): {t_batched:7.2f} s")

    H, G = sweep.draw(cfg, np.random.default_rng(cfg.seed), cfg.draws)  # the same draws (one chunk)
    t0 = time.perf_counter()
    explicit = batched_explicit(cfg, H, G)
    t_explicit = time.perf_counter() - t0
    print(f"batched, explicit precoders (no Gram shortcut, draws not timed): {t_explicit:7.2f} s")

    n_loop = args.loop_draws or cfg.draws
    t0 = time.perf_counter()
    looped = loop_sweep(cfg, H[:n_loop], {k: v[:n_loop] for k, v in G.items()})
    t_loop = time.perf_counter() - t0
    scaled = t_loop * cfg.draws / n_loop
    note = "" if n_loop == cfg.draws else f" on {n_loop} draws → {scaled:.1f} s scaled to {cfg.draws}"
    print(f"per-draw loop (draws not timed): {t_loop:7.2f} s{note}")
    print(f"speed-up of the batched sweep over the loop: {scaled / t_batched:.1f}×")
    print(f"load average after: {os.getloadavg()}")

    worst = max(np.abs(looped[k] - batched[k][:, :n_loop]).max() for k in batched)
    worst = max(worst, max(np.abs(explicit[k] - batched[k]).max() for k in batched))
    print(f"max |rate difference| per draw between the three: {worst:.2e} bit/s/Hz")
    if worst > 1e-6:
        raise SystemExit("the implementations disagree")


if __name__ == "__main__":
    main()
