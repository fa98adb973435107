"""Is a PDE inside the pretraining family? Warnings (not refusals) naming the term or range.

The shipped model was trained on sinus0 only (`foundry.pde.data.sinus`):
u_t + f0(u) + s(x) + (f1(u) - kappa(x) u_x)_x = 0, f_i cubic polynomials with coefficients in
[-3, 3], a source scalar in [-3, 3] or a field, kappa (scalar or field) in [1e-3, 1] (0 only for
pure transport), periodic initial conditions of size <= 2. Anything else still gets a prediction,
but it is an extrapolation and the user should know which part of the input made it one.
"""

from __future__ import annotations

import numpy as np

from foundry.pde.data.sinus import COEF_RANGE, KAPPA_RANGE
from foundry.pde.graph.canonical import _power, _split
from foundry.pde.graph.symbolic import PDE, Expr

FAMILY = "u_t + f0(u) + s(x) + (f1(u) - kappa*u_x)_x = 0"
_POWER_NAME = ("u", "u^2", "u^3")


def _coef_warning(what: str, c: float) -> str | None:
    if abs(c) > COEF_RANGE:
        return (
            f"the coefficient {c:g} of {what} is outside the training range [-{COEF_RANGE:g}, {COEF_RANGE:g}]"
        )
    return None


def _kappa_warning(kappa: np.ndarray, what: str) -> str | None:
    lo, hi = float(kappa.min()), float(kappa.max())
    if lo < 0:
        return (
            f"{what} has negative diffusivity (kappa = {lo:g} < 0): backward diffusion is ill-posed and "
            "outside the pretraining family"
        )
    if lo < KAPPA_RANGE[0] * 0.999 or hi > KAPPA_RANGE[1] * 1.001:
        return (
            f"the diffusivity of {what} spans [{lo:g}, {hi:g}], outside the training range "
            f"[{KAPPA_RANGE[0]:g}, {KAPPA_RANGE[1]:g}]"
        )
    return None


def _flux_warnings(flux: Expr, u: Expr) -> tuple[list[str], bool, bool]:
    """Warnings for the terms of dx(flux); also whether it holds diffusion and a nonlinear term."""
    out, diffusive, nonlinear = [], False, False
    for t in flux.args if flux.kind == "add" else (flux,):
        c, r = _split(t)
        if r is None:
            continue
        p = _power(r, u)
        if p < 3:
            nonlinear |= p > 0
            out.append(_coef_warning(f"{_POWER_NAME[p]} in the flux (..)_x", c))
        elif r.kind == "dx" and r.args[0] is u:
            diffusive = True
            out.append(_kappa_warning(np.array([-c]), "the u_xx term"))
        elif r.kind == "mul" and len(r.args) == 2 and r.args[0].kind == "cf" and r.args[1].kind == "dx":
            diffusive = True
            out.append(_kappa_warning(-c * r.args[0].value.values, "the kappa(x) u_x flux term"))
        else:
            out.append(f"the flux term {t!r} is not a term of the pretraining family {FAMILY}")
    return out, diffusive, nonlinear


def family_warnings(pde: PDE) -> list[str]:
    """One line per reason ``pde`` (canonical form, one unknown) lies outside the pretraining family."""
    u = pde.unknowns[0]
    out: list[str | None] = []
    if not pde.periodic:
        out.append("boundary conditions: the shipped model was trained on periodic problems only")
    diffusive = nonlinear = has_flux = False
    terms = pde.equations[0].args
    if any(
        _split(t)[1] is not None and _split(t)[1].kind == "dt" and _split(t)[1].args[0] is not u
        for t in terms
    ):
        # a wave-type equation: its other terms mean something else there, so name only the cause
        terms = tuple(t for t in terms if _split(t)[1] is not None and _split(t)[1].kind == "dt")
    for t in terms:
        c, r = _split(t)
        if r is None:
            out.append(_coef_warning("the constant source", c))
            continue
        if r.kind == "dt":
            if r.args[0] is not u:
                out.append(
                    "u_tt: second time derivatives are outside the (first-order in time) pretraining family"
                )
            continue
        if r.kind == "cf":
            continue  # a source field s(x)
        if r.kind == "dx":
            has_flux = True
            more, diffusive, nonlinear = _flux_warnings(r.args[0], u)
            out += more
            continue
        p = _power(r, u)
        if p < 3:
            out.append(_coef_warning(f"{_POWER_NAME[p]} (reaction term)", c))
        else:
            out.append(f"the term {r!r} is not a term of the pretraining family {FAMILY}")
    if has_flux and nonlinear and not diffusive:
        out.append(
            "no diffusion with a nonlinear flux (kappa = 0): shocks form; training always had kappa >= 1e-3"
        )
    ic = pde.initial[0].values
    x = pde.initial[0].x
    if np.abs(ic).max() > 2.0:
        out.append(f"the initial condition reaches |u0| = {np.abs(ic).max():.3g}; training ICs stay within 2")
    dx = x[1] - x[0] if len(x) > 1 else 1.0
    end = ic[0] + (ic[0] - ic[1]) * (x[0] + 1.0) / dx  # u0 extrapolated to x = -1 from the left end
    right = ic[-1] + (ic[-1] - ic[-2]) * (1.0 - x[-1]) / dx  # and to x = 1 from the right end
    if abs(end - right) > 0.05 * (np.abs(ic).max() + 1e-12) + 1e-9:
        out.append(
            f"the initial condition is not periodic on [-1, 1]: u0(-1) ~ {end:.3g}, u0(1) ~ {right:.3g}; "
            "the model assumes periodic data"
        )
    return [w for w in out if w]
