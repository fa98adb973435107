"""Reference solutions of the 2-D flow systems written as text: incompressible Navier-Stokes and
shallow water with bathymetry (`foundry pde predict --reference`, through `reference2d`).

The equations are read back into the forms the `ins2d` and `swe2d` solvers take, on the periodic
square (unknowns in this order):

* INS, unknowns (u, v, p), p without time derivative:
  ``u_t - nu*(u_xx + u_yy) + (u^2)_x + (u*v)_y + p_x + s_u = 0``,
  ``v_t - nu*(v_xx + v_yy) + (u*v)_x + (v^2)_y + p_y + s_v = 0``, ``u_x + v_y = 0``;
* SWE, unknowns (h, u, v): ``h_t - a_h*(h_xx + h_yy) + ((h + H)*u)_x + ((h + H)*v)_y = 0``,
  ``u_t - a_u*(u_xx + u_yy) + u*u_x + v*u_y + g*h_x = 0``, ``v_t - a_v*(...) + u*v_x + v*v_y + g*h_y = 0``
  with H a number or a field of x and y.

Each equation may carry a common factor (``2*u_t - ...``); a term outside the form raises
`UnsupportedPDE` naming it. Terms are matched by their expression structure, so products are read
in the order written above (``u*v``, not ``v*u``).
"""

from __future__ import annotations

import numpy as np

from foundry.pde.data.reference2d import monomials
from foundry.pde.data.symbolic_solver import UnsupportedPDE
from foundry.pde.graph.symbolic import PDE, Expr


def _terms(pde: PDE, e: Expr) -> tuple[dict[str, float], np.ndarray]:
    """An equation as {term structure: coefficient} plus its field/constant part on the PDE's points."""
    out: dict[str, float] = {}
    field = np.zeros(len(pde.points))
    for c, fac in monomials(e):
        if not fac:
            field += c
        elif len(fac) == 1 and fac[0].kind == "cf":
            field += c * fac[0].value.values
        else:
            key = " * ".join(map(repr, fac))
            out[key] = out.get(key, 0.0) + c
    return out, field


def _take(terms: dict[str, float], key: str, what: str, required: bool = True) -> float:
    if key not in terms:
        if required:
            raise UnsupportedPDE(f"{what} needs the term {key}")
        return 0.0
    return terms.pop(key)


def _diffusion(terms: dict[str, float], w: str, what: str) -> float:
    """The coefficient a of -a (w_xx + w_yy) (isotropic; 0 when absent)."""
    cx = _take(terms, f"dx(dx({w}))", what, required=False)
    cy = _take(terms, f"dy(dy({w}))", what, required=False)
    if not np.isclose(cx, cy) or cx > 0:
        raise UnsupportedPDE(f"{what}: the diffusion of {w} must read -a*({w}_xx + {w}_yy) with a >= 0")
    return -cx


def _done(terms: dict[str, float], what: str) -> None:
    left = [k for k, c in terms.items() if c != 0]
    if left:
        raise UnsupportedPDE(f"{what}: the term {left[0]} is outside the form the reference solves")


def read_ins(pde: PDE) -> dict:
    """nu and the forcing fields s_u, s_v (on the PDE's points) of the INS form."""
    names = [u.value for u in pde.unknowns]
    if len(names) != 3 or pde.evolved != [True, True, False]:
        raise UnsupportedPDE("the INS reference solves (u, v, p) with u_t, v_t and no p_t")
    u, v, p = names
    nus, sources = [], []
    momentum = ((u, f"square({u})", f"mul({u}, {v})", "dx"), (v, f"mul({u}, {v})", f"square({v})", "dy"))
    for eq, (w, fx, fy, dp) in zip(pde.equations[:2], momentum, strict=True):
        what = f"the {w} equation"
        terms, field = _terms(pde, eq)
        ct = _take(terms, f"dt({w})", what)
        for key in (f"dx({fx})", f"dy({fy})", f"{dp}({p})"):
            if not np.isclose(_take(terms, key, what), ct):
                raise UnsupportedPDE(f"{what}: {key} must have the coefficient of {w}_t")
        nus.append(_diffusion(terms, w, what) / ct)
        _done(terms, what)
        sources.append(field / ct)
    terms, field = _terms(pde, pde.equations[2])
    c = _take(terms, f"dx({u})", "the constraint")
    if not np.isclose(_take(terms, f"dy({v})", "the constraint"), c) or np.any(field):
        raise UnsupportedPDE(f"the constraint must read {u}_x + {v}_y = 0")
    _done(terms, "the constraint")
    if not np.isclose(nus[0], nus[1]):
        raise UnsupportedPDE(f"the two momentum equations need one viscosity, got {nus[0]:g} and {nus[1]:g}")
    return {"nu": nus[0], "s_u": sources[0], "s_v": sources[1]}


def _depth_fluxes(pde: PDE) -> tuple[float, float, dict[str, float], dict[str, np.ndarray], np.ndarray]:
    """The h equation term by term: ct (of h_t), the diffusion coefficient, the coefficients of the
    h*w parts of the fluxes ((h + H) w)_d and their H*w parts (H a number or a field), other fields."""
    h, u, v = pde.unknowns
    what = f"the {h.value} equation"
    ct, lap, own = 0.0, {"dx": 0.0, "dy": 0.0}, {"dx": 0.0, "dy": 0.0}
    base = {"dx": np.zeros(len(pde.points)), "dy": np.zeros(len(pde.points))}
    field = np.zeros(len(pde.points))
    for c, fac in monomials(pde.equations[0]):
        if len(fac) == 1 and fac[0].kind == "dt" and fac[0].args[0] is h:
            ct += c
        elif not fac or (len(fac) == 1 and fac[0].kind == "cf"):
            field += c * (fac[0].value.values if fac else 1.0)
        elif len(fac) == 1 and fac[0].kind in ("dx", "dy"):
            d, inner = fac[0].kind, fac[0].args[0]
            if inner.kind == d and inner.args[0] is h:
                lap[d] += c
                continue
            w = u if d == "dx" else v
            for c2, f2 in monomials(inner):
                cf = [f for f in f2 if f.kind == "cf"]
                if len(f2) == 2 and {id(f) for f in f2} == {id(h), id(w)}:
                    own[d] += c * c2
                elif len(f2) == 1 and f2[0] is w:
                    base[d] += c * c2
                elif len(f2) == 2 and len(cf) == 1 and any(f is w for f in f2):
                    base[d] += c * c2 * cf[0].value.values
                else:
                    raise UnsupportedPDE(f"{what}: the flux {fac[0]!r} is not ((h + H)*{w.value})_{d[1]}")
        else:
            raise UnsupportedPDE(f"{what}: the term {' * '.join(map(repr, fac))} is outside the SWE form")
    if ct == 0 or not np.isclose(lap["dx"], lap["dy"]) or lap["dx"] > 0:
        raise UnsupportedPDE(f"{what} must read {h.value}_t - a*({h.value}_xx + {h.value}_yy) + fluxes = 0")
    return ct, -lap["dx"], own, base, field


def read_swe(pde: PDE) -> dict:
    """g, the diffusivities (a_h, a_u, a_v) and H (on the PDE's points) of the SWE form."""
    if len(pde.unknowns) != 3 or not all(pde.evolved):
        raise UnsupportedPDE("the SWE reference solves (h, u, v), each with a time derivative")
    h, u, v = (w.value for w in pde.unknowns)
    ct, a_h, own, base, field = _depth_fluxes(pde)
    if not (np.isclose(own["dx"], ct) and np.isclose(own["dy"], ct)):
        raise UnsupportedPDE(
            f"the {h} equation needs ((h + H)*{u})_x + ((h + H)*{v})_y with the factor of {h}_t"
        )
    if not np.allclose(base["dx"], base["dy"]) or np.any(field):
        raise UnsupportedPDE(f"the {h} equation: both fluxes need one base height H, and no other terms")
    a, gs = [a_h / ct], []
    for eq, (w, dh) in zip(pde.equations[1:], ((u, "dx"), (v, "dy")), strict=True):
        what = f"the {w} equation"
        terms, field = _terms(pde, eq)
        cw = _take(terms, f"dt({w})", what)
        for key in (f"{u} * dx({w})", f"{v} * dy({w})"):
            if not np.isclose(_take(terms, key, what), cw):
                raise UnsupportedPDE(f"{what}: {key} must have the coefficient of {w}_t")
        gs.append(_take(terms, f"{dh}({h})", what) / cw)
        a.append(_diffusion(terms, w, what) / cw)
        _done(terms, what)
        if np.any(field):
            raise UnsupportedPDE(f"{what}: sources are not part of the SWE form the reference solves")
    if not np.isclose(gs[0], gs[1]) or gs[0] <= 0:
        raise UnsupportedPDE(f"the momentum equations need one gravity g > 0, got {gs[0]:g} and {gs[1]:g}")
    return {"g": gs[0], "a": a, "H": base["dx"] / ct}


def solve_flow_reference(pde: PDE, fine, num_t: int, target: int) -> tuple:
    """The target unknown [1, num_t, 2G, 2G] on the fine periodic grid and ok [1]; ``fine`` carries a
    field on the PDE's points there (`reference2d._fine`)."""
    import torch

    from foundry.pde.data.ins2d import solve_ins
    from foundry.pde.data.swe2d import solve_swe

    if not all(pde.domain.periodic):
        raise UnsupportedPDE("the INS and SWE references solve the periodic square")
    one = torch.ones(1, dtype=torch.float64)
    ics = [fine(pde.initial[i].values)[None] for i in sorted(pde.initial)]
    if pde.evolved == [True, True, False]:
        f = read_ins(pde)
        s_u, s_v = (fine(f[k])[None] for k in ("s_u", "s_v"))
        out, ok = solve_ins(ics[0], ics[1], f["nu"] * one, s_u, s_v, num_t=num_t)
    else:
        f = read_swe(pde)
        a = torch.tensor([f["a"]], dtype=torch.float64)
        out, ok = solve_swe(*ics, fine(f["H"])[None], f["g"] * one, a, num_t=num_t)
    return out[:, :, target], ok
