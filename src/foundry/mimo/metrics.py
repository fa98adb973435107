"""Sum rate and uncoded BER of a precoded downlink (reference §3), batched over draws.

Everything is evaluated in the real domain on the received gain matrix E = G·P̄ (B, 2M, 2M): row i is a
real receive dimension, column j a real stream, user k owns rows and columns `user_rows(K, M_k, real=True)`.
Symbols are complex with unit power, i.e. real streams of variance ½; the noise is CN(0, σ_n²) per
receive antenna, i.e. variance σ_n²/2 per real dimension.
"""

from typing import Literal

import numpy as np

from foundry.mimo.real_valued import complex_vector, real_vector, user_rows

Modulation = Literal["qpsk", "16qam"]
_BITS_PER_AXIS = {"qpsk": 1, "16qam": 2}


def user_rates(E: np.ndarray, noise_var: float | np.ndarray, user_antennas: int = 1) -> np.ndarray:
    """Rate of each user, decoding its Re/Im dimensions jointly with Gaussian signalling.

    R_k = ½·log2 det(I + Q_k⁻¹S_k), S_k = ½E_kkE_kkᵀ, Q_k = ½Σ_{j≠k}E_kjE_kjᵀ + (σ_n²/2)I, computed as
    ½·[log2 det(S_k + Q_k) − log2 det Q_k].

    Parameters
    ----------
    E : (..., 2M, 2M) real received gains, e.g. (B, 2M, 2M)
    noise_var : σ_n² per complex receive antenna (1/ρ for unit transmit power); a scalar or an array
        broadcastable against E.shape[:-2], e.g. (S, 1) to get every SNR at once

    Returns
    -------
    (..., K) bit/s/Hz, the broadcast of E.shape[:-2] and noise_var's shape
    """
    num_streams = E.shape[-1] // 2
    rows = user_rows(num_streams // user_antennas, user_antennas, real=True)  # [K, 2Mk]
    block = (Ellipsis, rows[:, :, None], rows[:, None, :])
    own = E[block]  # [..., K, 2Mk, 2Mk]
    received = 0.5 * E @ np.swapaxes(E, -1, -2)  # all streams, [..., 2M, 2M]
    noise = 0.5 * np.asarray(noise_var, dtype=float)[..., None, None, None] * np.eye(rows.shape[1])
    total = received[block] + noise
    interference = total - 0.5 * own @ np.swapaxes(own, -1, -2)
    return 0.5 * (_logdet(total) - _logdet(interference)) / np.log(2.0)


def sum_rate(E: np.ndarray, noise_var: float | np.ndarray, user_antennas: int = 1) -> np.ndarray:
    """Sum over users of `user_rates`: (...,) bit/s/Hz per channel use."""
    return user_rates(E, noise_var, user_antennas).sum(axis=-1)


def stream_sum_rate(E: np.ndarray, noise_var: float | np.ndarray) -> np.ndarray:
    """Per-real-stream variant: Σ_i ½·log2(1 + SINR_i), SINR_i = E_ii² / (Σ_{j≠i} E_ij² + σ_n²).

    Receive dimension i decodes stream i alone, so a user's own image counts as interference (close to a
    conventional receiver). Meaningful when each receive antenna carries its own stream (single-antenna
    users, or ZF-type precoders). Broadcasts like `user_rates`; returns (...,).
    """
    power = E**2
    signal = np.diagonal(power, axis1=-2, axis2=-1)
    interference = power.sum(axis=-1) - signal
    noise = np.asarray(noise_var, dtype=float)[..., None]
    return 0.5 * np.log2(1.0 + signal / (interference + noise)).sum(axis=-1)


def _logdet(X: np.ndarray) -> np.ndarray:
    """ln det of symmetric positive-definite blocks; 2×2 blocks (single-antenna users) in closed form."""
    if X.shape[-1] == 2:
        return np.log(X[..., 0, 0] * X[..., 1, 1] - X[..., 0, 1] * X[..., 1, 0])
    return np.linalg.slogdet(X)[1]


# --- uncoded BER --------------------------------------------------------------------------------------


def _gray_levels(bits_per_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """PAM levels (ascending, unit-power QAM scale) and the Gray label of each level: (L,), (L, b)."""
    num_levels = 2**bits_per_axis
    index = np.arange(num_levels)
    gray = index ^ (index >> 1)
    labels = (gray[:, None] >> np.arange(bits_per_axis - 1, -1, -1)) & 1
    levels = 2 * index - (num_levels - 1)
    scale = np.sqrt(2 * np.mean(levels.astype(float) ** 2))  # both axes → unit symbol power
    return levels / scale, labels


def qam_modulate(bits: np.ndarray, modulation: Modulation) -> np.ndarray:
    """Gray-mapped square QAM with unit average power: bits (..., 2b) → symbols (...)."""
    b = _bits_per_axis(modulation)
    levels, labels = _gray_levels(b)
    weights = 2 ** np.arange(b - 1, -1, -1)
    lookup = np.empty(2**b, dtype=int)
    lookup[labels @ weights] = np.arange(2**b)
    re = levels[lookup[bits[..., :b] @ weights]]
    im = levels[lookup[bits[..., b:] @ weights]]
    return re + 1j * im


def qam_demodulate(symbols: np.ndarray, modulation: Modulation) -> np.ndarray:
    """Nearest-point hard decisions: symbols (...) → bits (..., 2b)."""
    b = _bits_per_axis(modulation)
    levels, labels = _gray_levels(b)
    step = levels[1] - levels[0]

    def axis_bits(x: np.ndarray) -> np.ndarray:
        index = np.clip(np.rint((x - levels[0]) / step), 0, 2**b - 1).astype(int)
        return labels[index]

    return np.concatenate([axis_bits(symbols.real), axis_bits(symbols.imag)], axis=-1)


def ber(
    E: np.ndarray,
    noise_var: float,
    modulation: Modulation,
    num_symbols: int,
    rng: np.random.Generator,
) -> float:
    """Monte-Carlo uncoded BER of single-antenna users with a one-tap receiver.

    Each user k receives y_k = [E s̄ + n̄]_k, divides by the linear part of its own 2×2 gain block,
    e_k = ½[(E_kk^{ReRe} + E_kk^{ImIm}) + j(E_kk^{ImRe} − E_kk^{ReIm})] (what a pilot-based gain estimate
    sees), and decides symbol by symbol. Its own image and all leakage act as interference.

    Parameters
    ----------
    E : (B, 2M, 2M) real received gains, one receive antenna per user
    num_symbols : symbols per user and draw

    Returns
    -------
    bit error rate over all draws, users and symbols
    """
    if num_symbols < 1:
        raise ValueError(f"num_symbols must be ≥ 1, got {num_symbols}")
    batch, m = E.shape[0], E.shape[-1] // 2
    bits = rng.integers(0, 2, size=(batch, m, num_symbols, 2 * _bits_per_axis(modulation)))
    s = qam_modulate(bits, modulation)  # [B, M, S]
    noise = rng.standard_normal((batch, 2 * m, num_symbols)) * np.sqrt(noise_var / 2)
    y = complex_vector(E @ real_vector(s, axis=1) + noise, axis=1)  # [B, M, S]
    k = np.arange(m)
    gain = 0.5 * ((E[:, k, k] + E[:, m + k, m + k]) + 1j * (E[:, m + k, k] - E[:, k, m + k]))
    decided = qam_demodulate(y / gain[..., None], modulation)
    return float(np.mean(decided != bits))


def _bits_per_axis(modulation: str) -> int:
    if modulation not in _BITS_PER_AXIS:
        raise ValueError(f"unknown modulation {modulation!r}; valid: {', '.join(_BITS_PER_AXIS)}")
    return _BITS_PER_AXIS[modulation]
