import numpy as np
import pytest
from scipy.linalg import null_space

from foundry.mimo import channel, iq_imbalance, precoders
from foundry.mimo.metrics import sum_rate
from foundry.mimo.real_valued import real_matrix, user_rows


def setup(batch=20, k=6, mk=1, n=16, sigma_g=0.1, theta_deg=10.0, seed=0):
    rng = np.random.default_rng(seed)
    H = channel.rayleigh(rng, batch, k * mk, n)
    g, theta = iq_imbalance.draw_iq_params(rng, batch, n, sigma_g, np.deg2rad(theta_deg))
    a1, a2 = iq_imbalance.iq_coefficients(g, theta, sigma_g)
    return H, iq_imbalance.effective_channel(H), iq_imbalance.effective_channel(H, a1, a2)


def test_zf_inverts_the_channel_and_wl_zf_inverts_the_effective_channel():
    H, _, G = setup()
    np.testing.assert_allclose(H @ precoders.zf(H), np.broadcast_to(np.eye(6), (20, 6, 6)), atol=1e-12)
    # WL-ZF on G = H̄Ā: no inter-user and no image interference, even after normalisation
    E = G @ precoders.normalize(precoders.build("wl-zf", H, G, snr=100.0))
    off = E - np.diagonal(E, axis1=1, axis2=2)[..., None] * np.eye(12)
    assert np.abs(off).max() < 1e-12
    np.testing.assert_allclose(
        np.diagonal(E, axis1=1, axis2=2), E[:, :1, :1].repeat(12, 1)[..., 0], atol=1e-12
    )


@pytest.mark.parametrize("base", ["zf", "mmse", "mf"])
def test_wl_equals_conventional_without_iqi(base):
    H, Hbar, _ = setup()
    conv = precoders.build(base, H, Hbar, snr=10.0)
    wl = precoders.build(f"wl-{base}", H, Hbar, snr=10.0)
    np.testing.assert_allclose(wl, conv, atol=1e-10)


def test_wl_bd_equals_bd_without_iqi():
    H, Hbar, _ = setup(k=4, mk=2, n=12)
    for snr in (1.0, 100.0):
        rates = [
            sum_rate(
                Hbar @ precoders.normalize(precoders.build(p, H, Hbar, snr, user_antennas=2)), 1 / snr, 2
            )
            for p in ("bd", "wl-bd")
        ]
        np.testing.assert_allclose(rates[1], rates[0], atol=1e-10)


@pytest.mark.parametrize("real", [False, True])
def test_bd_matches_the_textbook_null_space_construction(real):
    H, Hbar, G = setup(batch=5, k=3, mk=2, n=10)
    X = G if real else H
    rows = user_rows(3, 2, real=real)
    P, gains = precoders.bd(X, rows)
    E = X @ P
    for b in range(X.shape[0]):  # dense per-draw reference: V⁽⁰⁾ = null(H_{−k}), SVD of H_k V⁽⁰⁾
        for k, r in enumerate(rows):
            others = np.setdiff1d(np.arange(X.shape[1]), r)
            V0 = null_space(X[b, others])
            s = np.linalg.svd(X[b, r] @ V0, compute_uv=False)
            np.testing.assert_allclose(gains[b, k], s[: len(r)], rtol=1e-10)
            np.testing.assert_allclose(E[b][np.ix_(others, r)], 0, atol=1e-11)  # block diagonal
            np.testing.assert_allclose(
                np.linalg.svd(E[b][np.ix_(r, r)], compute_uv=False), s[: len(r)], rtol=1e-10
            )
    for r in rows:  # orthonormal columns within each user (equal power per stream)
        Pk = P[:, :, r]
        np.testing.assert_allclose(
            Pk.conj().swapaxes(1, 2) @ Pk, np.broadcast_to(np.eye(len(r)), (5,) + (len(r),) * 2), atol=1e-12
        )


def test_mmse_matches_the_push_through_form_and_tends_to_zf():
    H, _, _ = setup()
    xi = 0.3
    eye = np.eye(H.shape[-1])
    Hh = H.conj().swapaxes(1, 2)
    np.testing.assert_allclose(precoders.mmse(H, xi), np.linalg.solve(Hh @ H + xi * eye, Hh), atol=1e-12)
    np.testing.assert_allclose(precoders.mmse(H, 1e-12), precoders.zf(H), atol=1e-9)


def test_normalisations():
    H, _, G = setup()
    P = precoders.build("wl-mmse", H, G, snr=10.0)
    Pg = precoders.normalize(P, "global", power=2.0)
    np.testing.assert_allclose(0.5 * np.sum(Pg**2, axis=(1, 2)), 2.0)
    Ps = precoders.normalize(P, "per_stream", power=2.0)
    np.testing.assert_allclose(0.5 * np.sum(Ps**2, axis=1), 2.0 / 12)
    # per-stream on the real form of a complex precoder = unit-norm complex columns
    Z = precoders.zf(H)
    Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True) / np.sqrt(6)
    np.testing.assert_allclose(precoders.normalize(real_matrix(Z), "per_stream"), real_matrix(Zn), atol=1e-12)


def test_errors_name_the_problem():
    H, Hbar, _ = setup(k=20, n=16)
    with pytest.raises(ValueError, match="rank-deficient.*bs_antennas = 16"):
        precoders.build("zf", H, Hbar, 1.0)
    with pytest.raises(ValueError, match="rank-deficient"):
        precoders.build("wl-bd", H, Hbar, 1.0, user_antennas=2)
    with pytest.raises(ValueError, match="unknown precoder 'rzf'; valid precoders: zf, mmse"):
        precoders.build("rzf", H, Hbar, 1.0)
    with pytest.raises(ValueError, match="normalization"):
        precoders.normalize(Hbar, "frobenius")
    with pytest.raises(ValueError, match="do not split into users of 4"):
        precoders.build("bd", H[:, :6], Hbar[:, :12], 1.0, user_antennas=4)
    assert precoders.build("mmse", H, Hbar, 1.0).shape == (20, 32, 40)  # MMSE/MF need no rank


@pytest.mark.parametrize("name", precoders.PRECODERS)
def test_every_precoder_returns_a_real_2n_by_2m_matrix(name):
    H, _, G = setup(batch=3, k=3, mk=2, n=10)
    P = precoders.build(name, H, G, snr=10.0, user_antennas=2)
    assert P.shape == (3, 20, 12) and P.dtype == np.float64
    assert np.all(np.isfinite(P))


@pytest.mark.parametrize("mode", ["global", "per_stream"])
@pytest.mark.parametrize("name", ["zf", "mmse", "mf", "wl-zf", "wl-mmse", "wl-mf"])
def test_gram_gains_equal_the_explicit_precoder(name, mode):
    H, Hbar, G = setup(batch=7)
    X = G if name.startswith("wl-") else Hbar
    A, W = G @ X.swapaxes(1, 2), X @ X.swapaxes(1, 2)
    snrs = np.array([1.0, 30.0, 1000.0])
    fast = precoders.gram_gains(name.removeprefix("wl-"), A, W, 6 / snrs, mode)
    for i, rho in enumerate(snrs):
        explicit = G @ precoders.normalize(precoders.build(name, H, G, rho), mode)
        np.testing.assert_allclose(fast[i] if fast.ndim == 4 else fast, explicit, atol=1e-10)
    with pytest.raises(ValueError, match="gram_gains covers"):
        precoders.gram_gains("bd", A, W)
