import numpy as np
import pytest

from foundry.mimo import iq_imbalance as iq
from foundry.mimo.real_valued import real_matrix, real_vector


def draw(seed=0, batch=50, n=8, sigma_g=0.1, theta_deg=10.0, law="variance"):
    rng = np.random.default_rng(seed)
    g, theta = iq.draw_iq_params(rng, batch, n, sigma_g, np.deg2rad(theta_deg), law)
    return rng, g, theta, *iq.iq_coefficients(g, theta, sigma_g)


def test_block_matches_the_rail_form_of_the_reference():
    _, g, theta, a1, a2 = draw()
    c = iq.power_scale(0.1)
    cos, sin = np.cos(theta / 2), np.sin(theta / 2)
    expected = c * np.stack(
        [np.stack([(1 + g) * cos, -(1 + g) * sin], -1), np.stack([-(1 - g) * sin, (1 - g) * cos], -1)], -2
    )
    np.testing.assert_allclose(iq.iq_block(a1, a2), expected, atol=1e-15)


def test_round_trips_are_exact():
    _, g, theta, a1, a2 = draw()
    b1, b2 = iq.coefficients_from_block(iq.iq_block(a1, a2))
    np.testing.assert_allclose(b1, a1, atol=1e-15)
    np.testing.assert_allclose(b2, a2, atol=1e-15)
    g2, theta2, c = iq.iq_params_from_coefficients(a1, a2)
    np.testing.assert_allclose(g2, g, atol=1e-14)
    np.testing.assert_allclose(theta2, theta, atol=1e-14)
    np.testing.assert_allclose(c, iq.power_scale(0.1), atol=1e-14)
    amp, phase, scale = iq.to_iqimbal(a1, a2)
    c1, c2 = iq.from_iqimbal(amp, phase, scale)
    np.testing.assert_allclose(c1, a1, atol=1e-14)
    np.testing.assert_allclose(c2, a2, atol=1e-14)


def test_iqimbal_convention():
    x = np.array([1.0 + 0.0j, 0.0 + 1.0j])
    # amplitude only: I rail × 10^{A/40}, Q rail × 10^{−A/40} (MATLAB/sdr documentation)
    np.testing.assert_allclose(iq.iqimbal(x, 2.0, 0.0), [10 ** (2 / 40), 1j * 10 ** (-2 / 40)])
    # phase only: I rotated by −P/2, Q by +P/2
    np.testing.assert_allclose(
        iq.iqimbal(x, 0.0, 30.0), [np.exp(-1j * np.pi / 12), 1j * np.exp(1j * np.pi / 12)]
    )


def test_model_equals_scaled_iqimbal_and_matches_the_small_mismatch_reading():
    rng, g, theta, a1, a2 = draw(sigma_g=0.05, theta_deg=3.0)
    x = rng.standard_normal(a1.shape) + 1j * rng.standard_normal(a1.shape)
    amp, phase, scale = iq.to_iqimbal(a1, a2)
    np.testing.assert_allclose(iq.apply_iqi(x, a1, a2), scale * iq.iqimbal(x, amp, phase), atol=1e-14)
    # reference §1.2: A ≈ 20·log10((1+g)/(1−g)) dB and P ≈ θ; the corrections are second order
    # (A shifts by O(θ²g), P by a relative ≈ 2g²: input-side vs output-side rail gains)
    np.testing.assert_allclose(amp, 20 * np.log10((1 + g) / (1 - g)), atol=0.01)
    theta_deg = np.rad2deg(theta)
    assert np.all(np.abs(phase - theta_deg) <= 3 * g**2 * np.abs(theta_deg) + 1e-6)
    np.testing.assert_allclose(
        np.abs(scale), iq.power_scale(0.05) * np.sqrt(1 - g**2), atol=1e-3
    )  # exact at θ=0


def test_power_is_preserved_on_average():
    _, _, _, a1, a2 = draw(batch=4000, n=64, sigma_g=0.2, theta_deg=15.0)
    assert abs(np.mean(np.abs(a1) ** 2 + np.abs(a2) ** 2) - 1.0) < 2e-3
    _, _, _, a1, a2 = draw(batch=1, n=4, sigma_g=0.0, theta_deg=0.0)
    np.testing.assert_array_equal(a1, 1.0)
    np.testing.assert_array_equal(a2, 0.0)


@pytest.mark.parametrize(("law", "half"), [("variance", np.sqrt(3.0)), ("range", 1.0)])
def test_theta_law(law, half):
    sigma = np.deg2rad(10.0)
    _, _, theta, _, _ = draw(batch=2000, n=64, theta_deg=10.0, law=law)
    assert np.abs(theta).max() <= half * sigma
    assert np.abs(theta).max() > 0.99 * half * sigma
    np.testing.assert_allclose(theta.std(), half * sigma / np.sqrt(3.0), rtol=0.01)


def test_real_form_and_effective_channel():
    rng, _, _, a1, a2 = draw(batch=3, n=6)
    x = rng.standard_normal((3, 6)) + 1j * rng.standard_normal((3, 6))
    Abar = iq.iq_real_matrix(a1, a2)
    np.testing.assert_allclose(
        Abar @ real_vector(x)[..., None], real_vector(iq.apply_iqi(x, a1, a2))[..., None]
    )
    H = rng.standard_normal((3, 4, 6)) + 1j * rng.standard_normal((3, 4, 6))
    np.testing.assert_allclose(iq.effective_channel(H, a1, a2), real_matrix(H) @ Abar, atol=1e-14)
    np.testing.assert_array_equal(iq.effective_channel(H), real_matrix(H))


def test_bad_parameters_are_named():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="sigma_g"):
        iq.draw_iq_params(rng, 1, 4, 1.5, 0.1)
    with pytest.raises(ValueError, match="sigma_theta"):
        iq.draw_iq_params(rng, 1, 4, 0.1, -0.1)
    with pytest.raises(ValueError, match="theta_law"):
        iq.draw_iq_params(rng, 1, 4, 0.1, 0.1, "gaussian")
