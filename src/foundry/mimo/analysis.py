"""Closed forms for the high-SNR behaviour (reference §4).

High-SNR affine form (Lozano–Tulino–Verdú): R ≈ S∞·(log2 ρ − L∞), S∞ the multiplexing gain and L∞ the
power offset in 3-dB units. Status of each result, as in the reference: the ZF and BD offsets are
standard (Wishart moments); the WL-ZF loss under IQI and the IQI-unaware ceiling are approximations
reconstructed for this project (the paper's own theorems were not available) and are checked against
Monte-Carlo in tests/mimo/test_analysis.py.
"""

import numpy as np
from scipy.special import digamma

from foundry.mimo.iq_imbalance import ThetaLaw, power_scale, theta_half_width

LOG2E = float(np.log2(np.e))
DB_PER_3DB_UNIT = float(10 * np.log10(2.0))


def zf_multiplexing_gain(num_streams: int) -> int:
    """S∞ = M for ZF, WL-ZF, BD and WL-BD (with or without IQI, when the precoder knows it)."""
    return num_streams


def zf_power_offset(num_tx: int, num_streams: int) -> float:
    """L∞ of ZF with equal power per stream (exact): log2 M − log2(e)·ψ(N − M + 1).

    1/[(HHᴴ)⁻¹]_kk is Gamma(N−M+1, 1) for i.i.d. CN(0, 1) H, whose E ln is ψ(N−M+1).
    """
    _check_load(num_tx, num_streams)
    return float(np.log2(num_streams) - LOG2E * digamma(num_tx - num_streams + 1))


def zf_power_offset_global(num_tx: int, num_streams: int) -> float:
    """L∞ of ZF with one global β (large-system): E log2 Tr[(HHᴴ)⁻¹] ≈ log2(M / (N − M))."""
    _check_load(num_tx, num_streams)
    return float(np.log2(num_streams / (num_tx - num_streams)))


def bd_power_offset(num_tx: int, num_users: int, user_antennas: int) -> float:
    """L∞ of BD with equal power: log2 M − (log2 e / M)·Σ_k Σ_{j=0}^{M_k−1} ψ(N − M + M_k − j)."""
    num_streams = num_users * user_antennas
    _check_load(num_tx, num_streams)
    j = np.arange(user_antennas)
    per_user = digamma(num_tx - num_streams + user_antennas - j).sum()
    return float(np.log2(num_streams) - LOG2E * num_users * per_user / num_streams)


def iq_eigen_dispersion(sigma_g: float, sigma_theta: float, theta_law: ThetaLaw = "variance") -> float:
    """v = E[(λ − 1)²] over the eigenvalues λ± of B_nᵀB_n, for g ~ N(0, σ_g²), θ ~ U[−a, a].

    λ± = c²[(1 + g²) ± √(4g² + (1 − g²)² sin²θ)], so
    v = c⁴[2σ_g⁴ + 4σ_g² + (1 − 2σ_g² + 3σ_g⁴)·E sin²θ],  E sin²θ = ½(1 − sin(2a)/(2a)).
    The small-mismatch form is v ≈ 4σ_g² + σ_θ² (θ in rad, variance reading).
    """
    c2 = power_scale(sigma_g) ** 2
    half = theta_half_width(sigma_theta, theta_law)
    mean_sin2 = 0.5 * (1.0 - np.sinc(2 * half / np.pi))
    s2 = sigma_g**2
    return float(c2**2 * (2 * s2**2 + 4 * s2 + (1 - 2 * s2 + 3 * s2**2) * mean_sin2))


def wl_zf_power_loss(
    num_tx: int, num_streams: int, sigma_g: float, sigma_theta: float, theta_law: ThetaLaw = "variance"
) -> float:
    """ΔL∞ of WL-ZF under IQI relative to ideal IQ, in 3-dB units: −log2[1 − (M/N)·v].

    Reconstructed approximation (reference §4): the deterministic equivalent of the per-stream ZF gain of
    G = H̄Ā shrinks by (1 − (M/N)·Var λ). Multiply by `DB_PER_3DB_UNIT` for dB (≈ 4.34·(M/N)·v dB).
    """
    _check_load(num_tx, num_streams)
    v = iq_eigen_dispersion(sigma_g, sigma_theta, theta_law)
    return float(-np.log2(1.0 - num_streams / num_tx * v))


def iq_moments(sigma_g: float, sigma_theta: float, theta_law: ThetaLaw = "variance") -> dict[str, float]:
    """|E a1|², Var a1 and E|a2|² for g ~ N(0, σ_g²), θ ~ U[−a, a] (exact, by E over θ of cos/sin of θ/2)."""
    c2 = power_scale(sigma_g) ** 2
    half = theta_half_width(sigma_theta, theta_law)
    mean_cos = float(np.sinc(half / (2 * np.pi)))  # E cos(θ/2) = sin(a/2)/(a/2)
    mean_cos2 = 0.5 * (1.0 + float(np.sinc(half / np.pi)))  # E cos²(θ/2) = ½(1 + sin a / a)
    mean_sin2 = 1.0 - mean_cos2
    s2 = sigma_g**2
    mean_a1_sq = c2 * mean_cos**2
    return {
        "mean_a1_sq": mean_a1_sq,
        "var_a1": c2 * (mean_cos2 + s2 * mean_sin2) - mean_a1_sq,
        "mean_abs_a2_sq": c2 * (s2 * mean_cos2 + mean_sin2),
    }


def iqi_unaware_sinr_ceiling(
    num_tx: int, num_streams: int, sigma_g: float, sigma_theta: float, theta_law: ThetaLaw = "variance"
) -> float:
    """SINR∞ ≈ ((N − M)/M)·|E a1|² / (E|a2|² + Var a1) of IQI-unaware ZF/MMSE at high SNR (linear)."""
    _check_load(num_tx, num_streams)
    mom = iq_moments(sigma_g, sigma_theta, theta_law)
    leak = mom["mean_abs_a2_sq"] + mom["var_a1"]
    if leak == 0.0:
        return float("inf")
    return (num_tx - num_streams) / num_streams * mom["mean_a1_sq"] / leak


def iqi_unaware_rate_ceiling(
    num_tx: int, num_streams: int, sigma_g: float, sigma_theta: float, theta_law: ThetaLaw = "variance"
) -> float:
    """R∞ ≈ M·log2(1 + SINR∞): where IQI-unaware ZF/MMSE/BD saturate (S∞ = 0), bit/s/Hz."""
    sinr = iqi_unaware_sinr_ceiling(num_tx, num_streams, sigma_g, sigma_theta, theta_law)
    return float(num_streams * np.log2(1.0 + sinr))


def _check_load(num_tx: int, num_streams: int) -> None:
    if not 0 < num_streams < num_tx:
        raise ValueError(f"closed forms need 0 < M < N, got M = {num_streams}, N = {num_tx}")


def empirical_power_offset(G: np.ndarray, normalization: str = "per_stream") -> np.ndarray:
    """Monte-Carlo side of L∞ for ZF on a real (effective) channel G (B, 2M, 2N): one value per draw.

    "per_stream": (1/2M)·Σ_i log2(M·[(GGᵀ)⁻¹]_ii), from R = Σ_i ½·log2(1 + ρ/(M·[(GGᵀ)⁻¹]_ii));
    "global": log2(½·Tr[(GGᵀ)⁻¹]), from R = M·log2(1 + 2ρ/Tr[(GGᵀ)⁻¹]). Average over draws for L∞;
    the difference of two such averages on paired draws estimates ΔL∞ with little noise.
    """
    num_streams = G.shape[-2] // 2
    inv_diag = np.diagonal(np.linalg.inv(G @ np.swapaxes(G, -1, -2)), axis1=-2, axis2=-1)
    if normalization == "per_stream":
        return np.log2(num_streams * inv_diag).mean(axis=-1)
    if normalization == "global":
        return np.log2(0.5 * inv_diag.sum(axis=-1))
    raise ValueError(f"normalization must be 'global' or 'per_stream', got {normalization!r}")
