"""Reference solutions of 2-D PDEs written with the symbolic or text API (`foundry pde predict --reference`).

The equation is read back into the form of a family the project's solvers handle, then solved:

* DCR, one unknown: ``c u_t - a (u_xx + u_yy) + f0(u) + s + f1(u)_x + f2(u)_y = 0`` with f_i cubic
  polynomials and s a constant or a field: `spectral2d.solve_dcr_refining` on a periodic square,
  `fd2d.solve_dcr_square` on a square with Dirichlet/Robin edges, `fd2d.solve_dcr_disk` on a disk
  centred in the square (Dirichlet: staircase, first order; Neumann/Robin: cut cells, second order).
* Wave as a first-order system of two unknowns (u, v): ``u_t - v = 0``,
  ``v_t + mu v - c2 (u_xx + u_yy) + s = 0``: `spectral2d.solve_wave` (exact in time) on a periodic
  square, `fd2d.solve_wave_square` with Dirichlet/Robin/Mur edges, `fd2d.solve_wave_disk` on a disk
  (Dirichlet, or Robin/Mur by cut cells).
* Steady DCR, linear: ``-a (u_xx + u_yy) + c0 u + (c1 u)_x + (c2 u)_y + s = 0`` (no u_t):
  `steady2d`'s direct solvers on the three domains; one frame, t = 0.
* Three unknowns: incompressible Navier-Stokes (u, v, p) or shallow water (h, u, v) on the periodic
  square, `reference_flows2d`.

Boundary conditions are read as ``g u_t + alpha u + beta u_n + c = 0`` with scalar g, alpha, beta and
a scalar or field value c (the solvers take c along the boundary).
The solvers run on a grid twice as fine as the PDE's function grid (G points per axis: 2G periodic
points, 2G - 1 nodes otherwise), the initial data and fields carried there by spectral (periodic) or
bilinear (nodes) interpolation, and the solution is returned on the function grid.
Anything else raises `UnsupportedPDE` naming the term.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from foundry.pde.data import fd2d
from foundry.pde.data.symbolic_solver import UnsupportedPDE
from foundry.pde.graph.symbolic import PDE, Expr

Monomial = tuple[float, tuple[Expr, ...]]  # coefficient, non-numeric factors


def monomials(e: Expr) -> list[Monomial]:
    """``e`` expanded into a sum of products: coefficient times factors (sums multiplied out)."""
    if e.kind == "coef":
        return [(float(e.value), ())]
    if e.kind == "add":
        return [m for a in e.args for m in monomials(a)]
    if e.kind == "neg":
        return [(-c, f) for c, f in monomials(e.args[0])]
    if e.kind == "mul":
        out: list[Monomial] = [(1.0, ())]
        for a in e.args:
            out = [(c1 * c2, f1 + f2) for c1, f1 in out for c2, f2 in monomials(a)]
        return out
    return [(1.0, (e,))]


def _degree(factors: tuple[Expr, ...], u: Expr) -> int | None:
    """k when the factors are u^k (u and square(u) factors only), else None."""
    k = 0
    for f in factors:
        if f is u:
            k += 1
        elif f.kind == "square" and f.args[0] is u:
            k += 2
        else:
            return None
    return k


@dataclass
class DCRForm:
    """``u_t - a Δu + f0(u) + s + f1(u)_x + f2(u)_y = 0`` (time coefficient divided out), or its
    steady form without u_t."""

    a: float = 0.0
    c0: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    c1: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    c2: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    source: np.ndarray | None = None  # on the PDE's points
    steady: bool = False  # no u_t: -a Δu + f0(u) + s + f1(u)_x + f2(u)_y = 0

    @property
    def linear(self) -> bool:
        return not any(c[1] or c[2] for c in (self.c0, self.c1, self.c2))


def read_dcr(pde: PDE) -> DCRForm:
    """The DCR coefficients of a one-unknown 2-D PDE; `UnsupportedPDE` names a term outside the form."""
    if len(pde.unknowns) != 1:
        raise UnsupportedPDE("the DCR reference solves one unknown")
    u = pde.unknowns[0]
    form, ct, lap = DCRForm(), 0.0, {"dx": 0.0, "dy": 0.0}
    src = np.zeros(len(pde.points))
    for c, fac in monomials(pde.equations[0]):
        k = _degree(fac, u)
        if len(fac) == 1 and fac[0].kind == "dt" and fac[0].args[0] is u:
            ct += c
        elif k is not None and 1 <= k <= 3:
            form.c0[k - 1] += c
        elif not fac:
            src += c
        elif len(fac) == 1 and fac[0].kind == "cf":
            src += c * fac[0].value.values
        elif len(fac) == 1 and fac[0].kind in ("dx", "dy"):
            axis = fac[0].kind
            for c2, inner in monomials(fac[0].args[0]):
                k2 = _degree(inner, u)
                if k2 is not None and 1 <= k2 <= 3:
                    (form.c1 if axis == "dx" else form.c2)[k2 - 1] += c * c2
                elif len(inner) == 1 and inner[0].kind == axis and inner[0].args[0] is u:
                    lap[axis] += c * c2
                else:
                    raise UnsupportedPDE(f"the term {fac[0]!r} is outside the DCR form the reference solves")
        else:
            raise UnsupportedPDE(
                f"the term {' * '.join(map(repr, fac))} is outside the DCR form the reference solves"
            )
    if ct == 0 and not pde.steady:
        raise UnsupportedPDE("the equation needs a u_t term")
    if ct == 0:  # steady: scaled so that the diffusion coefficient is positive
        ct = -1.0 if lap["dx"] > 0 else 1.0
        form.steady = True
    if not np.isclose(lap["dx"], lap["dy"]):
        raise UnsupportedPDE(f"anisotropic diffusion (u_xx {lap['dx']:g}, u_yy {lap['dy']:g}) is not solved")
    if -lap["dx"] / ct < 0:
        raise UnsupportedPDE("negative diffusion (anti-diffusion) is ill-posed")
    form.a = -lap["dx"] / ct
    form.c0, form.c1, form.c2 = ([v / ct for v in cs] for cs in (form.c0, form.c1, form.c2))
    form.source = src / ct if np.any(src) else None
    return form


@dataclass
class WaveForm:
    """``u_tt + mu u_t - c2 Δu + s = 0`` read from the system u_t - v = 0, v_t + mu v - c2 Δu + s = 0."""

    c2: float
    mu: float
    source: np.ndarray | None


def read_wave(pde: PDE) -> WaveForm:
    """The wave coefficients of a two-unknown first-order system; `UnsupportedPDE` otherwise."""
    if len(pde.unknowns) != 2:
        raise UnsupportedPDE("the wave reference solves the system (u, v) with u_t = v")
    u, v = pde.unknowns
    first = {
        (fac[0].kind, fac[0].args[0] is u) if fac[0].kind == "dt" else ("v", fac[0] is v): c
        for c, fac in monomials(pde.equations[0])
        if len(fac) == 1
    }
    if (
        len(first) != 2
        or first.get(("dt", True), 0) == 0
        or first.get(("v", True), 0) != -first[("dt", True)]
    ):
        raise UnsupportedPDE("the first equation must read u_t - v = 0")
    ct, mu, lap = 0.0, 0.0, {"dx": 0.0, "dy": 0.0}
    src = np.zeros(len(pde.points))
    for c, fac in monomials(pde.equations[1]):
        if len(fac) == 1 and fac[0].kind == "dt" and fac[0].args[0] is v:
            ct += c
        elif len(fac) == 1 and fac[0] is v:
            mu += c
        elif len(fac) == 1 and fac[0].kind in ("dx", "dy") and fac[0].args[0].kind == fac[0].kind:
            if fac[0].args[0].args[0] is not u:
                raise UnsupportedPDE(f"the term {fac[0]!r} is outside the wave form")
            lap[fac[0].kind] += c
        elif not fac:
            src += c
        elif len(fac) == 1 and fac[0].kind == "cf":
            src += c * fac[0].value.values
        else:
            raise UnsupportedPDE(f"the term {' * '.join(map(repr, fac))} is outside the wave form")
    if ct == 0 or not np.isclose(lap["dx"], lap["dy"]) or -lap["dx"] / ct <= 0:
        raise UnsupportedPDE("the second equation must read v_t + mu v - c2 (u_xx + u_yy) + s = 0, c2 > 0")
    return WaveForm(-lap["dx"] / ct, mu / ct, src / ct if np.any(src) else None)


@dataclass
class BoundaryForm:
    """``gamma u_t + alpha u + beta u_n + c = 0`` on one boundary piece; ``c`` a number or a field
    (values on the PDE's points, of which the solver uses those on or near the piece)."""

    gamma: float = 0.0
    alpha: float = 0.0
    beta: float = 0.0
    c: float | np.ndarray = 0.0


def read_boundary(pde: PDE, u: Expr, side: str) -> BoundaryForm:
    """The scalar coefficients of u's condition on ``side``; the normal derivative is recognised as
    the terms ``beta d_k u d_k sdf`` the API builds, which must share one beta."""
    (bc,) = [b for b in pde.boundary if b.unknown is u and b.side == side]
    form, normal = BoundaryForm(), {}
    for c, fac in monomials(bc.expr):
        k = _degree(fac, u)
        if k == 1:
            form.alpha += c
        elif not fac:
            form.c = form.c + c
        elif len(fac) == 1 and fac[0].kind == "cf":  # a field-valued boundary value
            form.c = form.c + c * fac[0].value.values
        elif len(fac) == 1 and fac[0].kind == "dt" and fac[0].args[0] is u:
            form.gamma += c
        elif len(fac) == 2 and {f.kind for f in fac} <= {"dx", "dy"} and fac[0].kind == fac[1].kind:
            sdf = [f for f in fac if f.args[0].kind == "sdf"]
            own = [f for f in fac if f.args[0] is u]
            if len(sdf) != 1 or len(own) != 1:
                raise UnsupportedPDE(
                    f"the boundary term {' * '.join(map(repr, fac))} is not a normal derivative"
                )
            normal[fac[0].kind] = normal.get(fac[0].kind, 0.0) + c
        else:
            raise UnsupportedPDE(
                f"the boundary term {' * '.join(map(repr, fac))} on {side!r} is not solved by the reference "
                "(u, u_n and u_t with scalar coefficients, and a scalar or field value)"
            )
    if normal:
        if len(normal) != pde.dim or not np.allclose(list(normal.values()), next(iter(normal.values()))):
            raise UnsupportedPDE(f"the condition on {side!r} has an incomplete normal derivative")
        form.beta = next(iter(normal.values()))
    if form.alpha == 0 and form.beta == 0:
        raise UnsupportedPDE(f"the condition on {side!r} has neither u nor u_n")
    return form


# ---- grids ---------------------------------------------------------------------------------------
def _fine(values: np.ndarray, g: int, periodic: bool) -> torch.Tensor:
    """Values on the G x G function grid -> the solver grid (2G periodic points / 2G - 1 nodes)."""
    v = torch.as_tensor(values.reshape(g, g), dtype=torch.float64)
    if periodic:  # spectral interpolation: zero-pad the spectrum
        vh = torch.fft.fft2(v)
        big = torch.zeros(2 * g, 2 * g, dtype=vh.dtype)
        h = g // 2
        for sx in (slice(0, h), slice(-h, None)):
            for sy in (slice(0, h), slice(-h, None)):
                big[sx, sy] = vh[sx, sy]
        return torch.fft.ifft2(big).real * 4
    return torch.nn.functional.interpolate(
        v[None, None], size=(2 * g - 1, 2 * g - 1), mode="bilinear", align_corners=True
    )[0, 0]


def _node_field(c: float | np.ndarray, g: int) -> torch.Tensor:
    """A boundary value on the solver's node grid: [1] for a number, [1, 2G - 1, 2G - 1] for a field."""
    if np.ndim(c) == 0:
        return torch.tensor([float(c)], dtype=torch.float64)
    return _fine(np.asarray(c), g, periodic=False)[None]


def _edge_values(cs: list[float | np.ndarray], g: int) -> torch.Tensor:
    """The square's boundary values (left, right, bottom, top) for `fd2d.SquareBC.beta`: [1, 4] numbers,
    or [1, 4, 2G - 1] along the edges' nodes when one is a field (linear between the G function points)."""
    if all(np.ndim(c) == 0 for c in cs):
        return torch.tensor([[float(c) for c in cs]], dtype=torch.float64)
    fine, coarse = np.linspace(0.0, 1.0, 2 * g - 1), np.linspace(0.0, 1.0, g)
    rows = []
    for c, edge in zip(cs, (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]), strict=True):
        along = np.full(g, float(c)) if np.ndim(c) == 0 else np.asarray(c).reshape(g, g)[edge]
        rows.append(np.interp(fine, coarse, along))
    return torch.tensor(np.stack(rows)[None], dtype=torch.float64)


def _solve_steady(
    form: DCRForm, g: int, periodic: bool, bc: fd2d.SquareBC | None, disk: fd2d.Disk | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The steady DCR problem -a Δu + c0 u + (c1 u)_x + (c2 u)_y + s = 0 by `steady2d`'s direct solvers
    on the periodic square, the square (conditions ``bc``) or the disk (``disk``)."""
    from foundry.pde.data import steady2d

    if not form.linear:
        raise UnsupportedPDE("the steady reference solves linear problems (no u^2 or u^3 terms)")
    n = 2 * g if periodic else 2 * g - 1
    one = torch.ones(1, dtype=torch.float64)
    args = [form.a * one] + [c[0] * one for c in (form.c0, form.c1, form.c2)]
    s = _fine(form.source, g, periodic)[None] if form.source is not None else torch.zeros(1, n, n)
    s = s.to(torch.float64)
    if periodic:
        if form.c0[0] <= 0:
            raise UnsupportedPDE(
                "a steady problem on the periodic square needs a u term with positive coefficient"
            )
        return steady2d.solve_steady_periodic(*args, s)
    if bc is not None:
        return steady2d.solve_steady_square(bc, *args, s)
    return steady2d.solve_steady_disk(disk, *args, s)


def solve_reference2d(pde: PDE, num_t: int = 21, target: int = 0) -> dict[str, np.ndarray]:
    """Solve a 2-D PDE with the project's solvers; returns t, x, y, u [num_t, G, G] (the target
    unknown, on the PDE's function grid) and mask [G, G] (points inside the domain)."""
    from foundry.pde.data import fd2d, spectral2d

    if pde.dim != 2:
        raise UnsupportedPDE("solve_reference2d solves 2-D PDEs")
    pde.check()
    g, dom = pde.resolution, pde.domain
    periodic = all(dom.periodic)
    if not periodic and any(dom.periodic):
        raise UnsupportedPDE("a square periodic along one axis only is not solved by the reference")
    if dom.kind not in ("square", "disk"):
        raise UnsupportedPDE(f"the reference solves squares and disks, not a {dom.kind} domain")
    if len(pde.unknowns) == 3:  # the flow systems: incompressible Navier-Stokes, shallow water
        from foundry.pde.data.reference_flows2d import solve_flow_reference

        u, ok = solve_flow_reference(pde, lambda v: _fine(v, g, True), num_t, target)
        return _on_function_grid(pde, u, ok, np.linspace(0.0, 1.0, num_t))
    wave = len(pde.unknowns) == 2
    if wave and target != 0:
        raise UnsupportedPDE("the wave reference gives u (unknown 0) only")
    one = torch.ones(1, dtype=torch.float64)
    u0 = _fine(pde.initial[0].values, g, periodic)[None] if 0 in pde.initial else None
    t = np.linspace(0.0, 1.0, num_t)

    def circle_disk(wave: bool = False) -> fd2d.Disk:
        fb = read_boundary(pde, pde.unknowns[0], "circle")
        if fb.gamma and not wave:
            raise UnsupportedPDE("u_t in a boundary condition (Mur) is solved for waves only")
        cx, cy, radius = dom.params
        if (cx, cy) != (0.5, 0.5):
            raise UnsupportedPDE("the disk reference solves disks centred at (0.5, 0.5)")
        if fb.beta == 0:  # u = -c / alpha on the circle
            if fb.gamma:
                raise UnsupportedPDE("a Mur condition needs the u_n term")
            return fd2d.Disk(radius * one, _node_field(-fb.c / fb.alpha, g))
        # gamma/beta u_t + u_n + (alpha / beta) u + c / beta = 0: the cut-cell Robin (Mur) solvers
        alpha, beta = fb.alpha / fb.beta * one, _node_field(fb.c / fb.beta, g)
        gamma = fb.gamma / fb.beta * one
        return fd2d.Disk(radius * one, 0 * one, alpha, beta, torch.zeros(1, dtype=torch.bool), gamma)

    def square_bc(u: Expr) -> fd2d.SquareBC:
        forms = [read_boundary(pde, u, side) for side in ("left", "right", "bottom", "top")]
        if not wave and any(f.gamma for f in forms):
            raise UnsupportedPDE("u_t in a boundary condition (Mur) is solved for waves only")
        dirichlet = torch.tensor([[f.beta == 0 for f in forms]])
        alpha = torch.tensor([[f.alpha / f.beta if f.beta else 0.0 for f in forms]], dtype=torch.float64)
        beta = _edge_values([f.c / (f.beta or f.alpha) for f in forms], g)
        gamma = torch.tensor([[f.gamma / f.beta if f.beta else 0.0 for f in forms]], dtype=torch.float64)
        if any(f.gamma and not f.beta for f in forms):
            raise UnsupportedPDE("a Mur condition needs the u_n term")
        return fd2d.SquareBC(dirichlet, alpha, beta, gamma if wave else None)

    if wave:
        form = read_wave(pde)
        v0 = _fine(pde.initial[1].values, g, periodic)[None]
        s = _fine(form.source, g, periodic)[None] if form.source is not None else None
        if periodic:
            u, ok = spectral2d.solve_wave(u0, v0, form.c2 * one, form.mu * one, s, num_t=num_t)
        else:
            h = 1.0 / (2 * g - 2)
            steps = int(np.ceil(1.0 / (num_t - 1) / (0.5 * h / np.sqrt(form.c2))))
            kw = {"num_t": num_t, "dt": 1.0 / (num_t - 1) / steps}
            c2, mu = form.c2 * one, form.mu * one
            if dom.kind == "square":
                u, ok = fd2d.solve_wave_square(u0, v0, square_bc(pde.unknowns[0]), c2, mu, s, **kw)
            else:
                u, ok = fd2d.solve_wave_disk(u0, v0, circle_disk(wave=True), c2, mu, s, **kw)
    else:
        form = read_dcr(pde)
        a = form.a * one
        c0, c1, c2 = (torch.tensor([cs], dtype=torch.float64) for cs in (form.c0, form.c1, form.c2))
        s = _fine(form.source, g, periodic)[None] if form.source is not None else None
        disk = circle_disk() if dom.kind == "disk" else None
        if form.steady:
            bc = square_bc(pde.unknowns[0]) if dom.kind == "square" and not periodic else None
            u, ok = _solve_steady(form, g, periodic, bc, disk)
            t = np.zeros(1)
        else:
            dts = (1e-3, 2.5e-4, 6.25e-5)
            if periodic:
                u, ok, _ = spectral2d.solve_dcr_refining(u0, a, c0, c1, c2, s, dts=dts, num_t=num_t)
            elif dom.kind == "square":
                u, ok, _ = spectral2d.refine_failed(
                    fd2d.solve_dcr_square,
                    (u0, square_bc(pde.unknowns[0]), a, c0, c1, c2, s),
                    dts,
                    num_t=num_t,
                )
            else:
                u, ok, _ = spectral2d.refine_failed(
                    lambda u0_, a_, c0_, c1_, c2_, s_, dt, **kw: fd2d.solve_dcr_disk(
                        u0_, disk, a_, c0_, c1_, c2_, s_, dt=dt, **kw
                    ),
                    (u0, a, c0, c1, c2, s),
                    dts,
                    num_t=num_t,
                )
    return _on_function_grid(pde, u, ok, t)


def _on_function_grid(pde: PDE, u: torch.Tensor, ok: torch.Tensor, t: np.ndarray) -> dict[str, np.ndarray]:
    """A solver's result (u [1, T, n, n] or a steady [1, n, n]) on the PDE's G x G function grid, with
    the inside mask; `UnsupportedPDE` if the solve left the solvers' bound."""
    if not bool(ok[0]):
        raise UnsupportedPDE(
            "the solution grows beyond the solvers' bound (|u| > U_MAX), is not finite, or (shallow "
            "water) runs dry (h + H <= 0)"
        )
    g, dom = pde.resolution, pde.domain
    u = (u[0, None] if u.ndim == 3 else u[0])[:, ::2, ::2].numpy()  # steady solvers: [B, n, n]
    axis = np.linspace(0.0, 1.0, g, endpoint=not all(dom.periodic))
    mask = (
        np.ones((g, g), dtype=bool)
        if dom.sdf is None or dom.kind == "square"
        else (dom.sdf(pde.points).reshape(g, g) < 0)
    )
    return {"t": t, "x": axis, "y": axis, "u": u, "mask": mask}
