"""The paper's qualitative claims (reference §5.1/§5.2, checklist items 2–4) on small batches."""

import numpy as np
import pytest

from foundry.mimo import channel, iq_imbalance, metrics, precoders

SNR_HIGH_DB = (40.0, 50.0)


def draws(n, m, batch=100, sigma_g=0.1, theta_deg=10.0, seed=0):
    rng = np.random.default_rng(seed)
    H = channel.rayleigh(rng, batch, m, n)
    g, th = iq_imbalance.draw_iq_params(rng, batch, n, sigma_g, np.deg2rad(theta_deg))
    a1, a2 = iq_imbalance.iq_coefficients(g, th, sigma_g)
    return rng, H, iq_imbalance.effective_channel(H), iq_imbalance.effective_channel(H, a1, a2)


def mean_rate(name, H, G, snr_db, user_antennas=1):
    rho = 10 ** (snr_db / 10)
    P = precoders.normalize(precoders.build(name, H, G, rho, user_antennas))
    return metrics.sum_rate(G @ P, 1 / rho, user_antennas).mean()


@pytest.mark.parametrize(("name", "n", "k", "mk"), [("zf", 64, 16, 1), ("mmse", 64, 16, 1), ("bd", 32, 8, 2)])
def test_iqi_unaware_saturates_while_wl_keeps_slope_m(name, n, k, mk):
    _, H, _, G = draws(n, k * mk)
    m = k * mk
    ideal_slope = m * np.log2(10.0)  # bit/s/Hz per 10 dB at multiplexing gain M
    wl = [mean_rate(f"wl-{name}", H, G, s, mk) for s in SNR_HIGH_DB]
    unaware = [mean_rate(name, H, G, s, mk) for s in SNR_HIGH_DB]
    assert wl[1] - wl[0] == pytest.approx(ideal_slope, rel=0.01)
    assert unaware[1] - unaware[0] < 0.02 * ideal_slope  # S∞ = 0
    assert unaware[1] < 0.5 * wl[1]


def test_wl_gap_to_ideal_is_a_small_constant():
    _, H, Hbar, G = draws(64, 16)
    gaps = [mean_rate("zf", H, Hbar, s) - mean_rate("wl-zf", H, G, s) for s in (20.0, 30.0, 40.0)]
    assert all(0 < gap < 1.5 for gap in gaps)  # ≈ M·ΔL∞ = 16 × 0.025 (3-dB units) ≈ 0.4 bit/s/Hz
    assert max(gaps) - min(gaps) < 0.1


def test_mf_is_interference_limited_and_wl_gives_no_gain():
    _, H, Hbar, G = draws(64, 16)
    mf = [mean_rate("mf", H, G, s) for s in (30.0, 40.0)]
    wl_mf = [mean_rate("wl-mf", H, G, s) for s in (30.0, 40.0)]
    assert mf[1] - mf[0] < 0.5 and wl_mf[1] - wl_mf[0] < 0.5
    assert 35 < mf[1] < 42  # reference §5.1: ≈ 39 at N = 64, K = 16
    assert wl_mf[1] <= mf[1]  # WL-MF is no better (reference §5.1, item 5)


def test_mmse_beats_zf_at_low_snr_and_converges():
    _, H, Hbar, _ = draws(32, 16)
    assert mean_rate("mmse", H, Hbar, 0.0) > mean_rate("zf", H, Hbar, 0.0) + 1.0
    assert mean_rate("mmse", H, Hbar, 40.0) == pytest.approx(mean_rate("zf", H, Hbar, 40.0), rel=2e-3)


def test_ber_of_wl_zf_with_iqi_tracks_ideal_iq():
    """16-QAM, N = 32, K = 16 (reference §5.2): WL-ZF with IQI stays near ideal ZF, IQI-unaware ZF floors."""
    rng, H, Hbar, G = draws(32, 16, batch=100)

    def ber(name, Geff, snr_db):
        rho = 10 ** (snr_db / 10)
        E = Geff @ precoders.normalize(precoders.build(name, H, Geff, rho))
        return metrics.ber(E, 1 / rho, "16qam", 100, rng)

    for snr_db in (10.0, 15.0):
        ideal, wl = ber("zf", Hbar, snr_db), ber("wl-zf", G, snr_db)
        assert wl == pytest.approx(ideal, rel=0.25)  # 0.34 dB loss at N/M = 2
    floor = ber("zf", G, 30.0)
    assert 3e-4 < floor < 3e-3  # error floor ≈ 1e-3
    assert ber("wl-zf", G, 25.0) < 1e-5
