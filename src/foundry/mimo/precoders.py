"""Linear and widely-linear precoders, batched over channel draws (reference §2).

Every base precoder takes a channel with rows = receive dimensions and returns a precoder whose columns
are streams, placed at the same indices as their user's rows. They work unchanged on a complex H
(conventional precoding) and on the effective real channel G = H̄Ā (widely-linear precoding: a real
precoder P̄ on G is the WL map x = P1 s + P2 s*, see `real_valued.real_to_wl`).

`build` returns every named precoder in the real domain, unnormalised; `normalize` applies the power
constraint ½·Tr(P̄P̄ᵀ) = P on the pre-IQI signal.
"""

from typing import Literal

import numpy as np

from foundry.mimo.real_valued import real_matrix, user_rows

PRECODERS = ("zf", "mmse", "mf", "bd", "wl-zf", "wl-mmse", "wl-mf", "wl-bd")
Normalization = Literal["global", "per_stream"]


def _hermitian(X: np.ndarray) -> np.ndarray:
    return np.conj(np.swapaxes(X, -1, -2))


def check_rank(num_rows: int, num_tx: int) -> None:
    """ZF and BD need at least as many BS antennas as receive antennas in total."""
    if num_rows > num_tx:
        raise ValueError(
            f"rank-deficient set-up: users × user_antennas = {num_rows} receive antennas exceed "
            f"bs_antennas = {num_tx}; ZF and BD need bs_antennas ≥ users × user_antennas"
        )


def zf(H: np.ndarray) -> np.ndarray:
    """Zero forcing P = Hᴴ(HHᴴ)⁻¹. H (B, M, N) → (B, N, M); on G this is WL-ZF, Gᵀ(GGᵀ)⁻¹."""
    check_rank(H.shape[-2], H.shape[-1])
    return _hermitian(np.linalg.solve(H @ _hermitian(H), H))


def mmse(H: np.ndarray, reg: float) -> np.ndarray:
    """Regularised ZF / transmit Wiener filter P = Hᴴ(HHᴴ + ξI)⁻¹, ξ = M/ρ. (B, M, N) → (B, N, M)."""
    if reg < 0:
        raise ValueError(f"MMSE regularisation must be ≥ 0, got {reg}")
    gram = H @ _hermitian(H) + reg * np.eye(H.shape[-2])
    return _hermitian(np.linalg.solve(gram, H))


def mf(H: np.ndarray) -> np.ndarray:
    """Matched filter (conjugate beamforming) P = Hᴴ. (B, M, N) → (B, N, M)."""
    return _hermitian(H)


def bd(H: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block diagonalisation with equal power per stream (unit-norm, orthonormal columns per user).

    User k's precoder spans null(H_{−k}) ∩ rowspace(H), which is the range of the ZF columns of user k,
    W_k = [Hᴴ(HHᴴ)⁻¹]_{:,k}: an orthonormal basis Q_k of it, rotated by the right singular vectors of
    H_k Q_k, equals the textbook V_k⁽⁰⁾V_k⁽¹⁾ (null-space SVD, then SVD of H_k V_k⁽⁰⁾) without the
    N×N null-space SVDs.

    Parameters
    ----------
    H : (B, M, N) complex or real (G for WL-BD)
    rows : (K, r) row indices per user (`real_valued.user_rows`)

    Returns
    -------
    P : (B, N, M), columns of user k at `rows[k]`
    gains : (B, K, r) singular values of user k's effective channel H_k P_k, descending
    """
    W = zf(H)
    Wk = np.moveaxis(W[:, :, rows], 1, 2)  # [B, K, N, r]
    Q, _ = np.linalg.qr(Wk)
    U, gains, Vh = np.linalg.svd(H[:, rows, :] @ Q)  # [B, K, r, r]
    P = np.zeros_like(W)
    P[:, :, rows] = np.moveaxis(Q @ _hermitian(Vh), 2, 1)
    return P, gains


def build(
    name: str,
    H: np.ndarray,
    G: np.ndarray,
    snr: float,
    user_antennas: int = 1,
) -> np.ndarray:
    """A named precoder in the real domain, unnormalised.

    Conventional precoders (zf, mmse, mf, bd) are computed from H alone (IQI-unaware when G includes
    the IQI) and returned as real_matrix(P); the WL versions are computed on G.

    Parameters
    ----------
    H : (B, M, N) complex channel
    G : (B, 2M, 2N) effective real channel the WL precoders are built on (H̄Ā, or H̄ for ideal IQ)
    snr : linear ρ = P/σ_n², used by (wl-)mmse only
    user_antennas : M_k, used by (wl-)bd only

    Returns
    -------
    (B, 2N, 2M) real
    """
    if name not in PRECODERS:
        raise ValueError(f"unknown precoder {name!r}; valid precoders: {', '.join(PRECODERS)}")
    wl = name.startswith("wl-")
    base = name.removeprefix("wl-")
    X = G if wl else H
    num_streams = H.shape[-2]
    if base == "zf":
        P = zf(X)
    elif base == "mmse":
        P = mmse(X, num_streams / snr)
    elif base == "mf":
        P = mf(X)
    else:
        check_rank(H.shape[-2], H.shape[-1])
        if num_streams % user_antennas:
            raise ValueError(f"{num_streams} receive antennas do not split into users of {user_antennas}")
        rows = user_rows(num_streams // user_antennas, user_antennas, real=wl)
        P, _ = bd(X, rows)
    return P if wl else real_matrix(P)


def gram_gains(
    base: str, A: np.ndarray, W: np.ndarray, reg: float | np.ndarray = 0.0, mode: Normalization = "global"
) -> np.ndarray:
    """Received gains E = G·P̄ of normalised ZF, MMSE or MF without forming the 2N×2M precoder.

    Speed trick for sweeps. With X̄ the real channel the precoder is built on (H̄, or G for WL), these
    precoders are P̄ = X̄ᵀC with C = (W + ξI)⁻¹ (ξ = 0: ZF) or C = I (MF), W = X̄X̄ᵀ. Given the
    SNR-independent Gram products A = G·X̄ᵀ and W (B, 2M, 2M), E = A·C and the column powers are
    ½·diag(CWC). One eigendecomposition W = UΛUᵀ serves every ξ: C = U·diag(1/(λ+ξ))·Uᵀ. Equals
    `G @ normalize(build(...), mode)` (tested); ZF needs W invertible (M ≤ N), which callers check.

    Parameters
    ----------
    reg : ξ, a scalar or an array of S values (MMSE over several SNRs at once)

    Returns
    -------
    (B, 2M, 2M) real, or (S, B, 2M, 2M) for an array `reg`; unit transmit power
    """
    if base == "mf":
        E, col_power = A, 0.5 * np.diagonal(W, axis1=-2, axis2=-1)
    elif base in ("zf", "mmse"):
        lam, U = np.linalg.eigh(W)  # [B, 2M], [B, 2M, 2M]
        xi = 0.0 if base == "zf" else np.asarray(reg, dtype=float)[..., None, None]
        d = 1.0 / (lam + xi)  # [(S,) B, 2M]
        E = ((A @ U) * d[..., None, :]) @ np.swapaxes(U, -1, -2)
        col_power = 0.5 * ((U**2) @ (lam * d**2)[..., None])[..., 0]
    else:
        raise ValueError(f"gram_gains covers zf, mmse and mf, got {base!r}")
    if mode == "global":
        return E / np.sqrt(col_power.sum(axis=-1))[..., None, None]
    if mode == "per_stream":
        return E / np.sqrt(W.shape[-1] * col_power)[..., None, :]
    raise ValueError(f"normalization must be 'global' or 'per_stream', got {mode!r}")


def normalize(Pbar: np.ndarray, mode: Normalization = "global", power: float = 1.0) -> np.ndarray:
    """Scale a real precoder (B, 2N, 2M) to the transmit power P = ½·Tr(P̄P̄ᵀ).

    "global": one β per draw, β = √(P / (½·Tr(P̃P̃ᵀ))). "per_stream": every real column gets power P/(2M)
    (for real forms of complex precoders this is the usual unit-norm-column equal power per stream).
    """
    if mode == "global":
        total = 0.5 * np.sum(Pbar**2, axis=(-2, -1), keepdims=True)
        return Pbar * np.sqrt(power / total)
    if mode == "per_stream":
        num_streams = Pbar.shape[-1] // 2
        col = 0.5 * np.sum(Pbar**2, axis=-2, keepdims=True)
        return Pbar * np.sqrt(power / (2 * num_streams * col))
    raise ValueError(f"normalization must be 'global' or 'per_stream', got {mode!r}")
