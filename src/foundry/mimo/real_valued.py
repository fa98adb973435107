"""Real-valued (stacked Re/Im) representation of complex and widely-linear maps.

A complex vector z in C^m is written z̄ = [Re z; Im z] in R^{2m} (block stacking, not per-entry
interleaving). A linear map Z acts on z̄ through [[Re Z, -Im Z], [Im Z, Re Z]]; a widely-linear map
x = P1 s + P2 s* acts through P̄ = [[Re(P1+P2), Im(P2-P1)], [Im(P1+P2), Re(P1-P2)]]
(reference §1.2). Every function here is exact and batched over any leading axes.
"""

import numpy as np


def real_matrix(Z: np.ndarray) -> np.ndarray:
    """Real form of a complex matrix.

    Parameters
    ----------
    Z : (..., m, n) complex

    Returns
    -------
    (..., 2m, 2n) real, [[Re Z, -Im Z], [Im Z, Re Z]]
    """
    re, im = Z.real, Z.imag
    top = np.concatenate([re, -im], axis=-1)
    bottom = np.concatenate([im, re], axis=-1)
    return np.concatenate([top, bottom], axis=-2)


def complex_matrix(R: np.ndarray) -> np.ndarray:
    """Inverse of `real_matrix` for matrices of that structure: (..., 2m, 2n) → (..., m, n)."""
    m, n = _half(R.shape[-2], "rows"), _half(R.shape[-1], "columns")
    return R[..., :m, :n] + 1j * R[..., m:, :n]


def real_vector(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stack [Re z; Im z] along `axis`: (..., m, ...) complex → (..., 2m, ...) real."""
    return np.concatenate([z.real, z.imag], axis=axis)


def complex_vector(zbar: np.ndarray, axis: int = -1) -> np.ndarray:
    """Inverse of `real_vector`: split `axis` in halves and return Re + j·Im."""
    re, im = np.split(zbar, 2, axis=axis)
    return re + 1j * im


def wl_to_real(P1: np.ndarray, P2: np.ndarray) -> np.ndarray:
    """Real form P̄ of the widely-linear map s ↦ P1 s + P2 s*.

    Parameters
    ----------
    P1, P2 : (..., m, n) complex

    Returns
    -------
    (..., 2m, 2n) real, [[Re(P1+P2), Im(P2-P1)], [Im(P1+P2), Re(P1-P2)]]
    """
    s, d = P1 + P2, P1 - P2
    top = np.concatenate([s.real, -d.imag], axis=-1)
    bottom = np.concatenate([s.imag, d.real], axis=-1)
    return np.concatenate([top, bottom], axis=-2)


def real_to_wl(Pbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `wl_to_real`: any real (..., 2m, 2n) matrix → (P1, P2), each (..., m, n) complex.

    P1 = ½[(P̄11 + P̄22) + j(P̄21 − P̄12)],  P2 = ½[(P̄11 − P̄22) + j(P̄21 + P̄12)].
    """
    m, n = _half(Pbar.shape[-2], "rows"), _half(Pbar.shape[-1], "columns")
    p11, p12 = Pbar[..., :m, :n], Pbar[..., :m, n:]
    p21, p22 = Pbar[..., m:, :n], Pbar[..., m:, n:]
    P1 = 0.5 * ((p11 + p22) + 1j * (p21 - p12))
    P2 = 0.5 * ((p11 - p22) + 1j * (p21 + p12))
    return P1, P2


def user_rows(num_users: int, user_antennas: int, real: bool) -> np.ndarray:
    """Row indices of each user in H (complex) or in its real form H̄.

    Returns
    -------
    (K, M_k) int for the complex layout, (K, 2·M_k) for the real one: user k's Re rows followed by
    its Im rows (offset by M = K·M_k).
    """
    rows = np.arange(num_users * user_antennas).reshape(num_users, user_antennas)
    if not real:
        return rows
    return np.concatenate([rows, rows + num_users * user_antennas], axis=1)


def _half(size: int, what: str) -> int:
    if size % 2:
        raise ValueError(f"a real-form matrix needs an even number of {what}, got {size}")
    return size // 2
