"""Downlink channel draws: i.i.d. Rayleigh and the Kronecker correlated model.

H = [H_1; …; H_K] ∈ C^{M×N} stacks the K users' M_k×N channels (M = K·M_k rows, N BS antennas),
batched over a leading axis: (B, M, N). Entries are CN(0, 1) before correlation (reference §1.2).
"""

import numpy as np


def rayleigh(rng: np.random.Generator, batch: int, num_rx: int, num_tx: int) -> np.ndarray:
    """i.i.d. CN(0, 1) entries: (batch, num_rx, num_tx) complex."""
    shape = (batch, num_rx, num_tx)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)


def exponential_correlation(size: int, rho: float) -> np.ndarray:
    """Exponential correlation matrix R_ij = ρ^|i−j| (a uniform linear array), ρ ∈ [0, 1)."""
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"correlation coefficient must be in [0, 1), got {rho}")
    idx = np.arange(size)
    return rho ** np.abs(idx[:, None] - idx[None, :])


def kronecker(
    rng: np.random.Generator,
    batch: int,
    rx_corr: np.ndarray,
    tx_corr: np.ndarray,
) -> np.ndarray:
    """Kronecker model H = R_rx^{1/2} W R_tx^{1/2} with W i.i.d. CN(0, 1).

    Parameters
    ----------
    rx_corr : (M, M) Hermitian PSD receive correlation (block-diagonal for separate users)
    tx_corr : (N, N) Hermitian PSD transmit (BS) correlation

    Returns
    -------
    (batch, M, N) complex, with E[vec(H) vec(H)^H] = R_txᵀ ⊗ R_rx.
    """
    w = rayleigh(rng, batch, rx_corr.shape[0], tx_corr.shape[0])
    return _sqrtm(rx_corr) @ w @ _sqrtm(tx_corr)


def user_correlated(
    rng: np.random.Generator,
    batch: int,
    num_users: int,
    user_antennas: int,
    num_tx: int,
    tx_rho: float = 0.0,
    rx_rho: float = 0.0,
) -> np.ndarray:
    """Multi-user Kronecker channel with exponential correlation at the BS and within each user.

    Users are far apart, so the receive correlation is block-diagonal (one ρ^|i−j| block per user).
    With tx_rho = rx_rho = 0 this is exactly `rayleigh`. Returns (batch, K·M_k, N) complex.
    """
    if tx_rho == 0.0 and rx_rho == 0.0:
        return rayleigh(rng, batch, num_users * user_antennas, num_tx)
    rx = np.kron(np.eye(num_users), exponential_correlation(user_antennas, rx_rho))
    return kronecker(rng, batch, rx, exponential_correlation(num_tx, tx_rho))


def _sqrtm(R: np.ndarray) -> np.ndarray:
    """Hermitian PSD square root via the eigendecomposition (clipping round-off negatives)."""
    w, v = np.linalg.eigh(R)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.conj().T
