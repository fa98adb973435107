"""Reference solver for any periodic one-unknown PDE written with the symbolic API.

Solves ``c * u_t + G(u, x) = 0`` by evaluating the expression tree of G pseudo-spectrally
(derivatives by FFT on a 2x zero-padded grid, the result truncated to the resolved modes), with
IMEX-SBDF2 time stepping. A stabilising diffusion sigma * u_xx is treated implicitly and
subtracted explicitly; sigma is the largest local diffusivity of G, measured by probing G with a
grid-point spike at every point (one batched evaluation). It backs `foundry pde predict
--reference` and cross-checks the family solver, which discretises the same PDEs differently.
"""

from __future__ import annotations

import numpy as np

from foundry.pde.data.spectral_solver import U_MAX, wavenumbers
from foundry.pde.graph.symbolic import PDE, Expr


class UnsupportedPDE(ValueError):
    """The PDE is outside what the reference solver handles."""


def _split_time_term(lhs: Expr, u: Expr) -> tuple[float, list[Expr]]:
    c, rest = None, []
    for term in lhs.args:
        if term.kind == "dt" and term.args[0] is u:
            factor = 1.0
        elif (
            term.kind == "mul"
            and len(term.args) == 2
            and term.args[0].kind == "coef"
            and term.args[1].kind == "dt"
            and term.args[1].args[0] is u
        ):
            factor = term.args[0].value
        else:
            rest.append(term)
            continue
        if c is not None:
            raise UnsupportedPDE("the equation has more than one u_t term")
        c = factor
    if c is None or c == 0.0:
        raise UnsupportedPDE("the equation needs one term c*u_t with c != 0 at the top level")
    return c, rest


class _Evaluator:
    """Evaluates expressions for a batch of states on the fine grid."""

    def __init__(self, u: Expr, n: int) -> None:
        self.u, self.n, self.m = u, n, 2 * n
        self.k_fine = np.pi * np.arange(self.m // 2 + 1)

    def fine(self, values: np.ndarray) -> np.ndarray:
        vh = np.fft.rfft(values, axis=-1)
        vh[..., -1] = 0.0
        return np.fft.irfft(vh, self.m, axis=-1) * 2.0

    def __call__(self, e: Expr, u_fine: np.ndarray) -> np.ndarray | float:
        k = e.kind
        if k == "uf":
            if e is not self.u:
                raise UnsupportedPDE("only one unknown is supported")
            return u_fine
        if k == "coef":
            return e.value
        if k == "cf":
            return self.fine(e.value.values)
        vals = [self(a, u_fine) for a in e.args]
        if k == "add":
            return sum(vals[1:], vals[0])
        if k == "mul":
            out = vals[0]
            for v in vals[1:]:
                out = out * v
            return out
        if k == "neg":
            return -vals[0]
        if k == "square":
            return vals[0] ** 2
        if k in ("exp", "sin", "cos"):
            return getattr(np, k)(vals[0])
        if k == "dx":
            v = np.broadcast_to(vals[0], u_fine.shape)
            return np.fft.irfft(1j * self.k_fine * np.fft.rfft(v, axis=-1), self.m, axis=-1)
        raise UnsupportedPDE(f"operator {k!r} may appear only as the top-level u_t term")


def solve_symbolic(
    pde: PDE, num_t: int = 101, dt: float = 2e-4, max_halvings: int = 3, t_end: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve a periodic PDE given symbolically on the grid of ``pde.x``, for t in [0, t_end].

    Returns
    -------
    t : (num_t,), x : (n,), u : (num_t, n)

    Raises
    ------
    UnsupportedPDE
        Non-periodic, several unknowns, a non-uniform grid, or a blow-up at every step size tried.
    """
    pde.check()
    if not pde.periodic or len(pde.unknowns) != 1:
        raise UnsupportedPDE("the reference solver handles one unknown with periodic boundaries")
    x = pde.x
    n = len(x)
    if n % 2 or not np.allclose(x, np.linspace(-1, 1, n, endpoint=False)):
        raise UnsupportedPDE("the PDE's points must be the uniform periodic grid on [-1, 1) with even n")
    u = pde.unknowns[0]
    c, rest = _split_time_term(pde.equations[0], u)
    ev = _Evaluator(u, n)
    k = wavenumbers(n)

    def rhs_hat(uh: np.ndarray) -> np.ndarray:  # FFT of -G(u)/c, truncated; uh: (B, n//2+1)
        uf = np.fft.irfft(uh, ev.m, axis=-1) * 2.0
        g = sum((np.broadcast_to(ev(term, uf), uf.shape) for term in rest), np.zeros_like(uf))
        gh = np.fft.rfft(g, axis=-1)[..., : n // 2 + 1] / 2.0
        gh[..., -1] = 0.0
        return -gh / c

    u0 = pde.initial[0].values
    # probe the local diffusivity with a spike at every grid point: response ~ sigma_j * (spike)_xx
    eps = 1e-4
    spikes = u0[None, :] + eps * np.eye(n)
    base = np.fft.irfft(rhs_hat(np.fft.rfft(u0)[None]), n, axis=-1)[0]
    resp = (np.fft.irfft(rhs_hat(np.fft.rfft(spikes, axis=-1)), n, axis=-1) - base)[
        np.arange(n), np.arange(n)
    ]
    spike_xx = -np.sum(np.concatenate([[0.0], 2 * k[1:-1] ** 2])) / n  # (delta_j)_xx at x_j
    sigma = max(0.0, 1.1 * float(np.max(resp / (eps * spike_xx))))

    for attempt in range(max_halvings + 1):
        h = dt / 2**attempt
        out = _sbdf2(rhs_hat, u0, sigma, k, n, num_t, h, t_end)
        if out is not None:
            return np.linspace(0, t_end, num_t), x, out
    raise UnsupportedPDE(f"the solution blew up (|u| > {U_MAX} or non-finite) even with dt={h:g}")


def _sbdf2(rhs_hat, u0, sigma, k, n, num_t, dt, t_end):
    per_save = round(t_end / (num_t - 1) / dt)
    if per_save < 1 or abs(per_save * dt * (num_t - 1) - t_end) > 1e-9:
        raise ValueError(f"dt={dt} must divide the save interval {t_end / (num_t - 1)}")
    lin = -sigma * k**2
    out = np.empty((num_t, n))
    out[0] = u0
    uh = np.fft.rfft(u0)[None]
    uh[..., -1] = 0.0

    def explicit(v):
        return rhs_hat(v) - lin * v

    with np.errstate(all="ignore"):
        n_prev = explicit(uh)
        uh_prev, uh = uh, (uh + dt * n_prev) / (1 - dt * lin)
        step = 1
        for frame in range(1, num_t):
            while step < frame * per_save:
                n_cur = explicit(uh)
                uh_prev, uh, n_prev = (
                    uh,
                    (4 * uh - uh_prev + 2 * dt * (2 * n_cur - n_prev)) / (3 - 2 * dt * lin),
                    n_cur,
                )
                step += 1
            out[frame] = np.fft.irfft(uh[0], n)
            if not np.all(np.isfinite(out[frame])) or np.abs(out[frame]).max() > U_MAX:
                return None
    return out
