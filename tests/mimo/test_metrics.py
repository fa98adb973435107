import numpy as np
import pytest
from scipy.stats import norm

from foundry.mimo import channel, iq_imbalance, metrics, precoders
from foundry.mimo.real_valued import real_matrix


def test_logdet_rate_equals_the_complex_sinr_rate_for_circular_signals():
    rng = np.random.default_rng(0)
    H = channel.rayleigh(rng, 30, 6, 16)
    P = precoders.mmse(H, 0.7)
    P = P / np.linalg.norm(P, axis=(1, 2), keepdims=True)
    noise = 0.2
    gains = np.abs(H @ P) ** 2  # [B, K, K]
    signal = np.diagonal(gains, axis1=1, axis2=2)
    sinr = signal / (gains.sum(axis=2) - signal + noise)
    E = real_matrix(H @ P)
    np.testing.assert_allclose(metrics.user_rates(E, noise), np.log2(1 + sinr), rtol=1e-10)
    # per-real-stream rate: each Re/Im dimension carries half the power, SINR unchanged
    np.testing.assert_allclose(metrics.stream_sum_rate(E, noise), np.log2(1 + sinr).sum(1), rtol=1e-10)


def test_zf_closed_forms():
    rng = np.random.default_rng(1)
    H = channel.rayleigh(rng, 40, 8, 20)
    rho = 50.0
    inv = np.linalg.inv(H @ H.conj().swapaxes(1, 2))
    P = real_matrix(precoders.zf(H))
    Hbar = real_matrix(H)
    global_rate = metrics.sum_rate(Hbar @ precoders.normalize(P, "global"), 1 / rho)
    np.testing.assert_allclose(global_rate, 8 * np.log2(1 + rho / np.trace(inv, axis1=1, axis2=2).real))
    stream_rate = metrics.sum_rate(Hbar @ precoders.normalize(P, "per_stream"), 1 / rho)
    diag = np.diagonal(inv, axis1=1, axis2=2).real
    np.testing.assert_allclose(stream_rate, np.log2(1 + rho / (8 * diag)).sum(1))


def test_bd_rate_closed_form():
    rng = np.random.default_rng(2)
    H = channel.rayleigh(rng, 10, 8, 12)
    rho = 30.0
    Hbar = iq_imbalance.effective_channel(H)
    E = Hbar @ precoders.normalize(precoders.build("bd", H, Hbar, rho, user_antennas=2))
    from foundry.mimo.real_valued import user_rows

    _, gains = precoders.bd(H, user_rows(4, 2, real=False))
    expected = np.log2(1 + rho * gains**2 / 8).sum(axis=(1, 2))
    np.testing.assert_allclose(metrics.sum_rate(E, 1 / rho, user_antennas=2), expected, rtol=1e-10)


def test_qam_maps_are_gray_unit_power_and_invertible():
    bits = np.array(np.meshgrid(*[[0, 1]] * 4, indexing="ij")).reshape(4, -1).T
    s = metrics.qam_modulate(bits, "16qam")
    assert len(np.unique(np.round(s, 12))) == 16
    np.testing.assert_allclose(np.mean(np.abs(s) ** 2), 1.0)
    np.testing.assert_array_equal(metrics.qam_demodulate(s, "16qam"), bits)
    d = np.abs(s[:, None] - s[None, :])
    nearest = np.isclose(d, d[d > 0].min())
    hamming = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    assert np.all(hamming[nearest] == 1)  # Gray: nearest neighbours differ in one bit
    q = metrics.qam_modulate(bits[:4, :2], "qpsk")
    np.testing.assert_allclose(np.abs(q), 1.0)


@pytest.mark.parametrize("modulation", ["qpsk", "16qam"])
def test_ber_on_an_interference_free_link_matches_the_awgn_formula(modulation):
    rng = np.random.default_rng(3)
    m, noise = 8, 10 ** (-12 / 10)
    E = np.broadcast_to(2.0 * np.eye(2 * m), (50, 2 * m, 2 * m))  # gain 2: the one-tap receiver removes it
    got = metrics.ber(E, noise, modulation, 500, rng)
    if modulation == "qpsk":
        expected = norm.sf(np.sqrt(4 / noise))
    else:
        x = np.sqrt(4 / 10) / np.sqrt(noise / 2)
        expected = (3 * norm.sf(x) + 2 * norm.sf(3 * x) - norm.sf(5 * x)) / 4
    assert abs(got - expected) < 4 * np.sqrt(expected / (50 * m * 500 * 2)) + 0.05 * expected


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown modulation '64qam'"):
        metrics.ber(np.eye(4)[None], 0.1, "64qam", 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="num_symbols"):
        metrics.ber(np.eye(4)[None], 0.1, "qpsk", 0, np.random.default_rng(0))


def test_rates_broadcast_over_snr_and_match_the_general_logdet():
    rng = np.random.default_rng(4)
    H = channel.rayleigh(rng, 6, 8, 12)
    g, th = iq_imbalance.draw_iq_params(rng, 6, 12, 0.1, 0.2)
    G = iq_imbalance.effective_channel(H, *iq_imbalance.iq_coefficients(g, th, 0.1))
    E = G @ precoders.normalize(precoders.build("mmse", H, G, 10.0))
    noise = np.array([1.0, 0.1, 0.01])
    every = metrics.sum_rate(E, noise[:, None])
    assert every.shape == (3, 6)
    for i, nv in enumerate(noise):
        np.testing.assert_allclose(every[i], metrics.sum_rate(E, nv))
        np.testing.assert_allclose(
            metrics.stream_sum_rate(E, noise[:, None])[i], metrics.stream_sum_rate(E, nv)
        )
    # the 2×2 closed-form determinant agrees with slogdet (users of 2 antennas use slogdet, 4×4 blocks)
    for mk in (1, 2):
        rates = metrics.user_rates(E, 0.1, user_antennas=mk)
        rows = np.arange(8).reshape(-1, mk)
        for k, r in enumerate(rows):
            idx = np.concatenate([r, r + 8])
            Ek = E[:, idx, :]
            own = Ek[:, :, idx]
            tot = 0.5 * Ek @ Ek.swapaxes(1, 2) + 0.05 * np.eye(2 * mk)
            q = tot - 0.5 * own @ own.swapaxes(1, 2)
            expected = 0.5 * np.log2(np.linalg.det(tot) / np.linalg.det(q))
            np.testing.assert_allclose(rates[:, k], expected, rtol=1e-10)
