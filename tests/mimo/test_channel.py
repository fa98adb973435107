import numpy as np
import pytest

from foundry.mimo import channel


def test_rayleigh_shape_and_power():
    H = channel.rayleigh(np.random.default_rng(0), 500, 4, 16)
    assert H.shape == (500, 4, 16) and H.dtype == complex
    assert abs(np.mean(np.abs(H) ** 2) - 1.0) < 0.01
    assert abs(np.mean(H.real**2) - 0.5) < 0.01


def test_kronecker_covariance():
    rng = np.random.default_rng(1)
    H = channel.user_correlated(rng, 20000, 2, 2, 4, tx_rho=0.7, rx_rho=0.5)
    assert H.shape == (20000, 4, 4)
    tx = np.einsum("bmi,bmj->ij", H, H.conj()) / (20000 * 4)
    np.testing.assert_allclose(tx, channel.exponential_correlation(4, 0.7), atol=0.02)
    rx = np.einsum("bin,bjn->ij", H, H.conj()) / (20000 * 4)
    expected_rx = np.kron(np.eye(2), channel.exponential_correlation(2, 0.5))  # users uncorrelated
    np.testing.assert_allclose(rx, expected_rx, atol=0.02)


def test_uncorrelated_is_rayleigh():
    a = channel.user_correlated(np.random.default_rng(3), 2, 3, 1, 5)
    b = channel.rayleigh(np.random.default_rng(3), 2, 3, 5)
    np.testing.assert_array_equal(a, b)


def test_bad_correlation():
    with pytest.raises(ValueError, match="correlation"):
        channel.exponential_correlation(4, 1.0)
