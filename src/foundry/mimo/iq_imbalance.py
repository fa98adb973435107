"""Transmit IQ imbalance per BS antenna (reference §1.1, eq. (1) of arXiv 1702.08703).

Antenna n sends a_n1·x_n + a_n2·x_n* with

    a_n1 = c·[cos(θ_n/2) + j·g_n·sin(θ_n/2)],   a_n2 = c·[g_n·cos(θ_n/2) − j·sin(θ_n/2)],
    c = 1/√(1 + σ_g²)   (average power preservation),

g_n ~ N(0, σ_g²) the gain mismatch and θ_n the phase mismatch, zero-mean uniform. The paper writes
θ_n ~ U(0, σ_θ²) with U(mean, variance); whether σ_θ is the standard deviation ("variance" reading,
θ ∈ [−√3σ_θ, √3σ_θ]) or the half-width ("range" reading, θ ∈ [−σ_θ, σ_θ]) is kept as an explicit
setting, `theta_law`. Arrays carry a leading batch axis: g, θ, a1, a2 are (B, N).
"""

from typing import Literal

import numpy as np

from foundry.mimo.real_valued import wl_to_real

ThetaLaw = Literal["variance", "range"]


def theta_half_width(sigma_theta: float, theta_law: ThetaLaw = "variance") -> float:
    """Half-width a of the uniform phase law θ ~ U[−a, a] for a given σ_θ (radians)."""
    if theta_law == "variance":
        return float(np.sqrt(3.0) * sigma_theta)
    if theta_law == "range":
        return float(sigma_theta)
    raise ValueError(f"theta_law must be 'variance' or 'range', got {theta_law!r}")


def power_scale(sigma_g: float) -> float:
    """c = 1/√(1 + σ_g²): keeps E[|a1|² + |a2|²] = 1, so IQI preserves power on average."""
    return float(1.0 / np.sqrt(1.0 + sigma_g**2))


def draw_iq_params(
    rng: np.random.Generator,
    batch: int,
    num_antennas: int,
    sigma_g: float,
    sigma_theta: float,
    theta_law: ThetaLaw = "variance",
) -> tuple[np.ndarray, np.ndarray]:
    """Draw per-antenna gain and phase mismatch.

    Parameters
    ----------
    sigma_g : standard deviation of g_n (dimensionless), in [0, 1)
    sigma_theta : σ_θ in radians, read according to `theta_law`

    Returns
    -------
    g, theta : (batch, num_antennas) float
    """
    if not 0.0 <= sigma_g < 1.0:
        raise ValueError(f"sigma_g must be in [0, 1), got {sigma_g}")
    if not 0.0 <= sigma_theta <= np.pi / 2:
        raise ValueError(f"sigma_theta must be in [0, π/2] rad, got {sigma_theta}")
    half = theta_half_width(sigma_theta, theta_law)
    g = sigma_g * rng.standard_normal((batch, num_antennas))
    theta = rng.uniform(-half, half, size=(batch, num_antennas))
    return g, theta


def iq_coefficients(g: np.ndarray, theta: np.ndarray, sigma_g: float) -> tuple[np.ndarray, np.ndarray]:
    """(g, θ) → (a1, a2) of eq. (1), with c = 1/√(1 + σ_g²)."""
    c = power_scale(sigma_g)
    cos, sin = np.cos(theta / 2), np.sin(theta / 2)
    return c * (cos + 1j * g * sin), c * (g * cos - 1j * sin)


def iq_params_from_coefficients(a1: np.ndarray, a2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of `iq_coefficients`: (a1, a2) → (g, θ, c).

    Uses a1 + a2* = c(1+g)·e^{jθ/2} and a1 − a2* = c(1−g)·e^{−jθ/2}.
    """
    upper, lower = a1 + np.conj(a2), a1 - np.conj(a2)
    cu, cl = np.abs(upper), np.abs(lower)
    return (cu - cl) / (cu + cl), 2 * np.angle(upper), (cu + cl) / 2


def iq_block(a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """Per-antenna real 2×2 block B_n = [[Re(a1+a2), Im(a2−a1)], [Im(a1+a2), Re(a1−a2)]].

    (..., N) complex → (..., N, 2, 2). B_n maps [Re x_n; Im x_n] to the transmitted [Re; Im]; it equals
    c·[[(1+g)cos(θ/2), −(1+g)sin(θ/2)], [−(1−g)sin(θ/2), (1−g)cos(θ/2)]].
    """
    return wl_to_real(a1[..., None, None], a2[..., None, None])


def coefficients_from_block(B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `iq_block`: (..., N, 2, 2) → (a1, a2), each (..., N)."""
    a1 = 0.5 * ((B[..., 0, 0] + B[..., 1, 1]) + 1j * (B[..., 1, 0] - B[..., 0, 1]))
    a2 = 0.5 * ((B[..., 0, 0] - B[..., 1, 1]) + 1j * (B[..., 1, 0] + B[..., 0, 1]))
    return a1, a2


def iq_real_matrix(a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """Ā ∈ R^{2N×2N}: the real form of x ↦ A1 x + A2 x*, A_i = diag(a_i). (B, N) → (B, 2N, 2N)."""
    eye = np.eye(a1.shape[-1])
    return wl_to_real(a1[..., None, :] * eye, a2[..., None, :] * eye)


def apply_iqi(x: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """Pass a transmit signal through the IQ imbalance: x (B, N, …) → a1·x + a2·x* per antenna."""
    extra = (slice(None),) * 2 + (None,) * (x.ndim - 2)
    return a1[extra] * x + a2[extra] * np.conj(x)


def effective_channel(
    H: np.ndarray, a1: np.ndarray | None = None, a2: np.ndarray | None = None
) -> np.ndarray:
    """Effective real channel G = H̄Ā seen by a real-domain precoder.

    H (B, M, N) complex, a1/a2 (B, N) → (B, 2M, 2N). Without a1/a2 (ideal IQ) this is H̄. Computed as the
    real form of the widely-linear map x ↦ (H A1) x + (H A2) x*, which needs no 2N×2N product.
    """
    if a1 is None or a2 is None:
        return wl_to_real(H, np.zeros_like(H))
    return wl_to_real(H * a1[..., None, :], H * a2[..., None, :])


# --- MATLAB `iqimbal` / python `sdr.iq_imbalance` convention -------------------------------------------
# y = Re(x)·g_I·e^{−jP/2} + j·Im(x)·g_Q·e^{+jP/2},  g_I = 10^{A/40},  g_Q = 10^{−A/40}  (A in dB, P in deg).
# The rails carry the gain on their input side, this model on their output side, so the two agree up to a
# per-antenna complex factor (which an ideal channel estimate absorbs): a1·x + a2·x* = scale·iqimbal(x).


def iqimbal(x: np.ndarray, amplitude_db: np.ndarray, phase_deg: np.ndarray) -> np.ndarray:
    """MATLAB's documented `iqimbal(x, A, P)`, elementwise (A, P broadcast against x)."""
    half_phase = np.deg2rad(phase_deg) / 2
    gain_i = 10 ** (np.asarray(amplitude_db) / 40) * np.exp(-1j * half_phase)
    gain_q = 10 ** (-np.asarray(amplitude_db) / 40) * np.exp(1j * half_phase)
    return x.real * gain_i + 1j * x.imag * gain_q


def to_iqimbal(a1: np.ndarray, a2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a1, a2) → (amplitude_dB, phase_deg, scale) with a1·x + a2·x* = scale·iqimbal(x, A, P) exactly.

    From iqimbal's coefficients K1 + K2 = g_I·e^{−jP/2}, K1 − K2 = g_Q·e^{jP/2}:
    (a1+a2)/(a1−a2) = 10^{A/20}·e^{−jP}. For small mismatch A ≈ 20·log10((1+g)/(1−g)) and P ≈ θ.
    """
    ratio = (a1 + a2) / (a1 - a2)
    amplitude_db = 20 * np.log10(np.abs(ratio))
    phase = -np.angle(ratio)
    scale = (a1 + a2) / (10 ** (amplitude_db / 40) * np.exp(-0.5j * phase))
    return amplitude_db, np.rad2deg(phase), scale


def from_iqimbal(
    amplitude_db: np.ndarray, phase_deg: np.ndarray, scale: np.ndarray | complex = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `to_iqimbal`: the (a1, a2) of scale·iqimbal(x, A, P)."""
    half_phase = np.deg2rad(phase_deg) / 2
    gain_i = 10 ** (np.asarray(amplitude_db) / 40) * np.exp(-1j * half_phase)
    gain_q = 10 ** (-np.asarray(amplitude_db) / 40) * np.exp(1j * half_phase)
    return scale * (gain_i + gain_q) / 2, scale * (gain_i - gain_q) / 2
