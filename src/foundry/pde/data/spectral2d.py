"""Batched torch Fourier pseudo-spectral solvers for periodic 2D families on [0, 1]^2 (PDEformer-2 data).

DCR (diffusion-convection-reaction), per sample b:

    u_t - a Δu + f0(u) + s(x, y) + f1(u)_x + f2(u)_y = 0,    f_i(u) = c_i1 u + c_i2 u^2 + c_i3 u^3

is stepped with IMEX-SBDF2 (one SBDF1 start step): the linear part -a|k|^2 - c01 - i kx c11 - i ky c21
is diagonal in Fourier space and implicit; u^2 and u^3 are formed on a 2x zero-padded grid (exact
for cubic terms, the "dealias 2" of the reference) and are explicit.

Wave, u_tt + mu u_t - c2 Δu + s(x, y) = 0, is linear with constant coefficients, so each Fourier
mode is advanced exactly from frame to frame by the 3x3 matrix exponential of (u, u_t, 1).

Arrays are indexed ``u[b, ..., i, j]`` at (x_i, y_j) = (i/n, j/n). Everything stays on ``device``
and the loops make no host synchronisation, so a GPU runs the whole batch asynchronously. Samples
whose solution leaves |u| <= U_MAX (or turns non-finite) are frozen at their last good frame and
flagged; they never touch the other samples, since every operation is per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from foundry.pde.data.spectral_solver import U_MAX

Tensor = torch.Tensor


# ---- grids and spectral helpers ------------------------------------------------------------------
def grid(
    n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Coordinates (x, y), each [n, n], of the periodic grid (i/n, j/n) on [0, 1)^2."""
    c = torch.arange(n, device=device, dtype=dtype) / n
    return torch.meshgrid(c, c, indexing="ij")


def wavenumbers(
    n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Angular wavenumbers for ``rfft2``: kx [n, 1] (full axis) and ky [1, n//2 + 1] (half axis)."""
    kx = 2 * math.pi * torch.fft.fftfreq(n, 1.0 / n, device=device, dtype=dtype)
    ky = 2 * math.pi * torch.arange(n // 2 + 1, device=device, dtype=dtype)
    return kx[:, None], ky[None, :]


def _nyquist_mask(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """1 except on the Nyquist row and column, which a real field cannot represent symmetrically."""
    mask = torch.ones(n, n // 2 + 1, device=device, dtype=dtype)
    mask[n // 2, :] = 0.0
    mask[:, n // 2] = 0.0
    return mask


class _Padder:
    """Moves rfft2 spectra between the n x n grid and the finer grid used for products (2n x 2n by
    default; `fine` sets another even size, e.g. the 3/2 rule's, exact for quadratic products)."""

    def __init__(self, n: int, device: torch.device, dtype: torch.dtype, fine: int | None = None):
        self.n, self.m, self.h = n, fine if fine is not None else 2 * n, n // 2
        self.mask = _nyquist_mask(n, device, dtype)

    def to_fine(self, vh: Tensor) -> Tensor:
        n, m, h = self.n, self.m, self.h
        out = vh.new_zeros(*vh.shape[:-2], m, m // 2 + 1)
        out[..., :h, : h + 1] = vh[..., :h, :]
        out[..., m - h :, : h + 1] = vh[..., h:, :]  # row h (Nyquist) is zero, so its sign is moot
        return torch.fft.irfft2(out, s=(m, m)) * (m / n) ** 2

    def from_fine(self, v: Tensor) -> Tensor:
        n, m, h = self.n, self.m, self.h
        fh = torch.fft.rfft2(v)
        vh = torch.cat([fh[..., :h, : h + 1], fh[..., m - h :, : h + 1]], dim=-2)
        return vh * ((n / m) ** 2 * self.mask)


def _steps_per_save(dt: float, num_t: int, t_end: float) -> int:
    ratio = (t_end / (num_t - 1)) / dt
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise ValueError(f"dt={dt} must divide the save interval {t_end / (num_t - 1)}")
    return round(ratio)


def _check_frame(u: Tensor, ok: Tensor) -> Tensor:
    """ok [B] and-ed with 'every value finite and within U_MAX' (a tensor op: no host sync)."""
    good = torch.isfinite(u) & (u.abs() <= U_MAX)
    return ok & good.flatten(1).all(dim=1)


def _per_sample(ok: Tensor, like: Tensor) -> Tensor:
    """ok [B] shaped to broadcast over ``like`` [B, ...]."""
    return ok.view(-1, *(1,) * (like.ndim - 1))


def sbdf2(
    wh: Tensor,
    explicit: Callable[[Tensor], Tensor],
    solve: Callable[[Tensor, bool], Tensor],
    frame: Callable[[Tensor], Tensor],
    num_t: int,
    steps: int,
    dt: float,
    first: Tensor | None = None,
    check: Callable[[Tensor, Tensor], Tensor] = _check_frame,
) -> tuple[Tensor, Tensor]:
    """The IMEX-SBDF2 time loop of the pseudo-spectral solvers (one SBDF1 start step).

    ``wh`` [B, ...] is the initial state's spectrum; ``explicit(wh)`` the explicit terms N;
    ``solve(rhs, start)`` returns (1 - dt L)^-1 rhs on the start step and (3 - 2 dt L)^-1 rhs after;
    ``frame(wh)`` the saved (physical) frame, every ``steps`` steps; ``first`` the frame at t = 0
    (default ``frame(wh)``). ``check(frame, ok)`` marks blow-ups (default: non-finite or |.| > U_MAX);
    a failed sample's state is zeroed so it cannot overflow later steps, and its later frames repeat
    its last good one. Returns frames [B, num_t, ...] and ok [B].
    """
    w = frame(wh) if first is None else first
    out = torch.empty(w.shape[0], num_t, *w.shape[1:], device=w.device, dtype=w.dtype)
    out[:, 0] = w
    ok = check(w, torch.ones(w.shape[0], dtype=torch.bool, device=w.device))
    n_prev = explicit(wh)
    wh_prev, wh = wh, solve(wh + dt * n_prev, True)
    step = 1
    for f in range(1, num_t):
        while step < f * steps:
            n_cur = explicit(wh)
            wh_prev, wh, n_prev = wh, solve(4 * wh - wh_prev + 2 * dt * (2 * n_cur - n_prev), False), n_cur
            step += 1
        w = frame(wh)
        ok = check(w, ok)
        keep = _per_sample(ok, wh)
        wh, wh_prev, n_prev = (torch.where(keep, v, torch.zeros_like(v)) for v in (wh, wh_prev, n_prev))
        out[:, f] = torch.where(_per_sample(ok, w), w, out[:, f - 1])
    return out, ok


def per_mode_solver(op: Tensor, dt: float) -> Callable[[Tensor, bool], Tensor]:
    """`sbdf2`'s ``solve`` for a linear operator coupling K fields per Fourier mode, op [B, X, Y, K, K]
    (complex): the matrices (I - dt L)^-1 and (3 - 2 dt L)^-1 are inverted once per mode and sample."""
    eye = torch.eye(op.shape[-1], device=op.device, dtype=op.dtype)
    start = torch.linalg.inv(eye - dt * op)
    later = torch.linalg.inv(3 * eye - 2 * dt * op)

    def solve(rhs: Tensor, first: bool) -> Tensor:  # rhs [B, K, X, Y]
        return torch.einsum("bxykl,blxy->bkxy", start if first else later, rhs)

    return solve


# ---- DCR -----------------------------------------------------------------------------------------
def solve_dcr(
    u0: Tensor,
    a: Tensor,
    c0: Tensor,
    c1: Tensor,
    c2: Tensor,
    source: Tensor | None = None,
    num_t: int = 101,
    dt: float = 1e-3,
    t_end: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Solve a batch of periodic 2D DCR equations u_t - a Δu + f0(u) + s + f1(u)_x + f2(u)_y = 0.

    Parameters
    ----------
    u0 : [B, n, n]
        Initial fields on the grid of `grid` (n even).
    a : [B]
        Diffusivity (the reference draws it in [1e-3, 1e-2]).
    c0, c1, c2 : [B, 3]
        Coefficients of u, u^2, u^3 in f0, f1, f2 (the reference draws them in U[-1, 1]).
    source : [B, n, n], optional
        s(x, y); zero when omitted.
    num_t : int
        Saved frames, uniform on [0, t_end]; the first is u0.
    dt : float
        Time step; it must divide the save interval ``t_end / (num_t - 1)``.
    device, dtype
        Where and in what precision to compute (default: u0's device, float64).

    Returns
    -------
    u : [B, num_t, n, n]
        Solution frames; a failed sample repeats its last good frame.
    ok : [B] bool
        False where the solution left |u| <= U_MAX or became non-finite.
    """
    dev = torch.device(device) if device is not None else u0.device
    u0 = u0.to(dev, dtype)
    bsz, n, _ = u0.shape
    if n % 2:
        raise ValueError(f"n={n} must be even")
    steps = _steps_per_save(dt, num_t, t_end)
    pad = _Padder(n, dev, dtype)
    kx, ky = wavenumbers(n, dev, dtype)
    a, c0, c1, c2 = (v.to(dev, dtype) for v in (a, c0, c1, c2))

    def per_mode(c: Tensor) -> Tensor:  # [B, k] -> [B, k, 1, 1] to broadcast over modes
        return c[..., None, None]

    # implicit linear operator [B, n, n//2+1]: diffusion, linear reaction, linear advection
    lin = (
        -per_mode(a) * (kx**2 + ky**2)
        - per_mode(c0[:, 0])
        - 1j * (kx * per_mode(c1[:, 0]) + ky * per_mode(c2[:, 0]))
    )
    # explicit multipliers of the spectra of u^2 and u^3, [B, 2, n, n//2+1]: f0 + d_x f1 + d_y f2
    mult = per_mode(c0[:, 1:]) + 1j * (kx * per_mode(c1[:, 1:]) + ky * per_mode(c2[:, 1:]))
    source_h = torch.fft.rfft2(source.to(dev, dtype)) * pad.mask if source is not None else None

    def explicit(uh: Tensor) -> Tensor:
        u = pad.to_fine(uh)
        powers_h = pad.from_fine(torch.stack([u * u, u * u * u], dim=1))  # one batched FFT for both
        rhs = -(mult * powers_h).sum(dim=1)
        return rhs - source_h if source_h is not None else rhs

    denom = 3 - 2 * dt * lin
    return sbdf2(
        torch.fft.rfft2(u0) * pad.mask,
        explicit,
        lambda rhs, start: rhs / (1 - dt * lin) if start else rhs / denom,
        lambda uh: torch.fft.irfft2(uh, s=(n, n)),
        num_t,
        steps,
        dt,
        first=u0,
    )


def solve_dcr_refining(
    u0: Tensor,
    a: Tensor,
    c0: Tensor,
    c1: Tensor,
    c2: Tensor,
    source: Tensor | None = None,
    dts: tuple[float, ...] = (2.5e-3, 1.25e-3, 3.125e-4),
    **kwargs: Any,
) -> tuple[Tensor, Tensor, Tensor]:
    """`solve_dcr` at ``dts[0]``, re-solving the samples that failed at each next, smaller dt.

    The reference tries its sub-step counts in order until a sample stays finite; this does the same
    for a batch (one host synchronisation per attempt, to pick the failed samples). A true blow-up
    is retried at every dt, so it costs the sum of all attempts. ``kwargs`` go to `solve_dcr`.

    Returns
    -------
    u : [B, num_t, n, n], ok : [B] bool, and dt : [B] float64, the step each sample's solution used
    (the last one tried where ``ok`` is False).
    """
    return refine_failed(solve_dcr, (u0, a, c0, c1, c2, source), dts, **kwargs)


def refine_failed(
    solve: Callable[..., tuple[Tensor, Tensor]],
    args: Sequence[Tensor | None],
    dts: Sequence[float],
    **kwargs: Any,
) -> tuple[Tensor, Tensor, Tensor]:
    """``solve(*args, dt=dts[0], **kwargs)``, then the members that failed re-solved at each next dt.

    `args` are batched along their first axis (None passes through). Returns u, ok [B] and dt [B]
    float64, the step each member's solution used (the last one tried where ``ok`` is False)."""
    u, ok = solve(*args, dt=dts[0], **kwargs)
    dt_used = torch.full(ok.shape, dts[0], dtype=torch.float64, device=ok.device)
    for dt in dts[1:]:
        redo = (~ok).nonzero().flatten()
        if redo.numel() == 0:
            break
        sub = [v[redo.to(v.device)] if v is not None else None for v in args]
        u[redo], ok[redo] = solve(*sub, dt=dt, **kwargs)
        dt_used[redo] = dt
    return u, ok, dt_used


# ---- Wave ----------------------------------------------------------------------------------------
def solve_wave(
    u0: Tensor,
    v0: Tensor,
    c2: Tensor,
    damping: Tensor | None = None,
    source: Tensor | None = None,
    num_t: int = 101,
    t_end: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Solve a batch of periodic 2D wave equations u_tt + mu u_t - c2 Δu + s(x, y) = 0 exactly in time.

    Parameters
    ----------
    u0, v0 : [B, n, n]
        Initial displacement and velocity u_t.
    c2 : [B]
        Squared wave speed (the reference draws it in [1e-2, 4]).
    damping : [B], optional
        mu >= 0; zero when omitted.
    source : [B, n, n], optional
        s(x, y), constant in time; zero when omitted. Its mean makes the mean of u grow like t^2.
    num_t, t_end, device, dtype
        As in `solve_dcr`; there is no time step: each frame is the exact propagator applied once.

    Returns
    -------
    u : [B, num_t, n, n] and ok : [B] bool, as in `solve_dcr`.
    """
    dev = torch.device(device) if device is not None else u0.device
    u0, v0, c2 = u0.to(dev, dtype), v0.to(dev, dtype), c2.to(dev, dtype)
    bsz, n, _ = u0.shape
    mask = _nyquist_mask(n, dev, dtype)
    kx, ky = wavenumbers(n, dev, dtype)
    mu = damping.to(dev, dtype) if damping is not None else torch.zeros_like(c2)
    # generator of d/dt (u, v, 1) per mode: u' = v, v' = -c2 |k|^2 u - mu v - s
    gen = torch.zeros(bsz, n, n // 2 + 1, 3, 3, device=dev, dtype=dtype)
    gen[..., 0, 1] = 1.0
    gen[..., 1, 0] = -c2[:, None, None] * (kx**2 + ky**2)
    gen[..., 1, 1] = -mu[:, None, None]
    gen[..., 1, 2] = -1.0
    uh, vh = torch.fft.rfft2(u0) * mask, torch.fft.rfft2(v0) * mask
    prop = torch.linalg.matrix_exp(gen * (t_end / (num_t - 1))).to(uh.dtype)  # real, applied to spectra
    s_h = (
        torch.fft.rfft2(source.to(dev, dtype)) * mask
        if source is not None
        else torch.zeros_like(prop[..., 0, 0])
    )

    out = torch.empty(bsz, num_t, n, n, device=dev, dtype=dtype)
    out[:, 0] = u0
    ok = _check_frame(u0, torch.ones(bsz, dtype=torch.bool, device=dev))
    for frame in range(1, num_t):
        uh, vh = (
            prop[..., 0, 0] * uh + prop[..., 0, 1] * vh + prop[..., 0, 2] * s_h,
            prop[..., 1, 0] * uh + prop[..., 1, 1] * vh + prop[..., 1, 2] * s_h,
        )
        u = torch.fft.irfft2(uh, s=(n, n))
        ok = _check_frame(u, ok)
        out[:, frame] = torch.where(ok[:, None, None], u, out[:, frame - 1])
    return out, ok
