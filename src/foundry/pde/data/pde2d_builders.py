"""Symbolic PDEs (`foundry.pde.graph.symbolic.PDE`) of drawn 2-D family members (PDEformer-2 data).

Each builder takes the solver arguments of a batch (the family batch dataclasses of `families2d`,
`mv_dcr2d`, plus the domain data of `fd2d`) and a member index ``b`` and writes that member the way
the reference writes the family (reference §8): zero coefficients are dropped (no node for a zero
term), ``u``, ``u^2``, ``u^3`` are one node each shared by f0 and the fluxes (as the 1-D
`sinus.params_to_pde`), a flux is one ``dx``/``dy`` of its sum, the source is a ``cf`` field and each
boundary piece gets the expression `PDE.bc` writes for its condition (in 2-D the nodes d_k u,
d_k sdf_Ω and u_t are one node each, shared by all conditions and equations: `PDE.derivative`;
fresh copies per edge would need over 110 graph nodes for a Mur wave, more than the 96 slots used).

Grids. The fields are given on the solver grid, which is twice as fine as the function grid G of
the PDE: the periodic grid i / (2G) (`spectral2d.grid`), or the node grid i / (2G - 2) with 2G - 1
nodes (`fd2d.node_grid`). Taking every second point (``[::2, ::2]``) gives exactly the G points of
``Domain.grid(G)`` (i / G periodic, i / (G - 1) non-periodic), so the functions in the graph are the
solver's initial data and fields at those points. Values are passed flattened row-major, the order
of ``pde.points``.

Families:

* DCR ``u_t - a Δu + f0(u) + s + f1(u)_x + f2(u)_y = 0``: periodic square, square with one
  condition per edge in the reference's forms (`BoundaryForms`: D-type u + b u_n + c = 0, Dirichlet
  when b = 0, and N-type a u + u_n + c = 0), or the disk with one such condition on its circle.
* Wave as a first-order system of two unknowns (u, v): ``u_t - v = 0``,
  ``v_t + mu v - c2 Δu + s = 0``, initial u0 and v0 (v0 may be zero: the ``ic`` node is still
  there, its function row is zero). On the square with Mur edges both unknowns get
  the condition ``pde.bc(., side, "mur", speed=c)`` writes, c = sqrt(c2): u's condition u_t + c u_n = 0 is the
  first-order absorbing condition the solver uses (`fd2d.SquareBC` with gamma = 1/c); v = u_t obeys
  its time derivative v_t + c v_n = 0, the same condition, so v gets the same kind.
* MV-DCR (`mv_dcr2d`), K unknowns u0..u{K-1}:
  ``d_t u_k - a_k Δu_k + sum_j C_kj u_j + sum_p Q0_kp P_p + s_k + d_x g_k + d_y h_k = 0``, the
  products P_p = u_i u_j one node each (``square`` for i = j), shared by all equations.

On the disk the wave gets the same Mur condition on its circle (`wave_disk_mur_pde`). Not drawn yet:
field-valued coefficients in conditions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from foundry.pde.data.families2d import DCRBatch, WaveBatch
from foundry.pde.data.fd2d import Disk, SquareBC
from foundry.pde.data.mv_dcr2d import MVDCRBatch, pairs
from foundry.pde.graph.domain import SQUARE_EDGES, Domain
from foundry.pde.graph.symbolic import PDE, Expr

Tensor = torch.Tensor
D_TYPE, N_TYPE = 0, 1


@dataclass
class BoundaryForms:
    """Conditions in the reference's forms, one per boundary piece; [B, P] each.

    P = 4 on the square (edges left, right, bottom, top) or 1 on the disk (its circle).
    ``kind`` D_TYPE: u + coef u_n + c = 0 (Dirichlet u + c = 0 where coef = 0);
    ``kind`` N_TYPE: coef u + u_n + c = 0 (Neumann where coef = 0). u_n is the outward normal derivative.
    """

    kind: Tensor
    coef: Tensor
    c: Tensor

    def solver_bc(self) -> SquareBC:
        """The square's conditions as `fd2d.SquareBC` (D-type divided by its b, as `SquareBC.from_d_type`)."""
        d = SquareBC.from_d_type(self.coef, self.c)
        n = SquareBC.from_n_type(self.coef, self.c)
        is_d = self.kind == D_TYPE
        return SquareBC(
            is_d & d.dirichlet,
            torch.where(is_d, d.alpha, n.alpha),
            torch.where(is_d, d.beta, n.beta),
        )

    def solver_disk(self, radius: Tensor) -> Disk:
        """The circle's conditions (P = 1) as `fd2d.Disk` of these radii [B]."""
        kind, coef, c = self.kind[:, 0], self.coef[:, 0], self.c[:, 0]
        d, n = Disk.from_d_type(radius, coef, c), Disk.from_n_type(radius, coef, c)
        is_d = kind == D_TYPE
        return Disk(
            radius,
            torch.where(is_d, d.value, n.value),
            torch.where(is_d, d.alpha, n.alpha),
            torch.where(is_d, d.beta, n.beta),
            is_d & d.dirichlet,
        )

    def write(self, pde: PDE, u: Expr, b: int, sides: tuple[str, ...]) -> None:
        """Member ``b``'s conditions on ``sides`` (piece order) with `PDE.bc`."""
        for e, side in enumerate(sides):
            kind, k, c = int(self.kind[b, e]), float(self.coef[b, e]), float(self.c[b, e])
            if kind == D_TYPE and k == 0.0:
                pde.bc(u, side, "dirichlet", value=-c)
            elif kind == D_TYPE:
                pde.bc(u, side, "robin", value=-c, alpha=1.0, beta=k)
            elif k == 0.0:
                pde.bc(u, side, "neumann", value=-c)
            else:
                pde.bc(u, side, "robin", value=-c, alpha=k, beta=1.0)


def subsample(field: Tensor | np.ndarray, resolution: int) -> np.ndarray:
    """Solver-grid values [..., n, n] -> every second point [..., G, G] (n = 2G or 2G - 1)."""
    f = np.asarray(field.detach().cpu() if isinstance(field, Tensor) else field)[..., ::2, ::2]
    if f.shape[-2:] != (resolution, resolution):
        raise ValueError(
            f"a solver grid of {field.shape[-1]} points does not subsample to G={resolution} "
            f"(use n = 2G periodic or 2G - 1 nodes)"
        )
    return f


def _values(field: Tensor | np.ndarray, resolution: int) -> np.ndarray:
    return subsample(field, resolution).astype(np.float64).reshape(-1)


def impose_square_dirichlet(u0: Tensor, bc: SquareBC) -> Tensor:
    """u0 [B, n, n] with the Dirichlet edges set as `fd2d.solve_dcr_square` does (corners: y-edge wins).

    The solver overwrites those nodes in frame 0; doing it before solving makes u0 the solver's
    initial data, so the graph's initial condition equals the stored first frame.
    """
    u = u0.clone()
    n = u.shape[-1]
    for e, (axis, idx) in enumerate(((-2, 0), (-2, n - 1), (-1, 0), (-1, n - 1))):
        m = bc.dirichlet[:, e]
        val = -bc.beta[:, e].to(u.dtype)
        view = u.select(axis, idx)  # [B, n]
        view[m] = val[m, None].expand(-1, n)
    return u


def impose_disk(u0: Tensor, disk: Disk) -> Tensor:
    """u0 [B, n, n] as `solve_dcr_disk` holds it: outside the disk the Dirichlet value, and 0 at the
    nodes of Robin samples whose cell misses the disk."""
    n = u0.shape[-1]
    dirichlet, value, *_ = disk.conditions(u0.device, u0.dtype)
    inside_d = disk.mask(n, u0.device, u0.dtype)
    inside_r = (disk.cell_volumes(n, u0.device, u0.dtype) > 0).to(u0.dtype)
    held = torch.where(dirichlet[:, None, None], value[:, None, None], torch.zeros_like(value)[:, None, None])
    inside = torch.where(dirichlet[:, None, None], inside_d, inside_r)
    return inside * u0 + (1 - inside) * held


# ---- DCR -----------------------------------------------------------------------------------------
def dcr_equation(
    pde: PDE, u: Expr, a: float, c0, c1, c2, source: np.ndarray | None, dt: Expr | None = None
) -> None:
    """u_t - a Δu + f0(u) + s + f1(u)_x + f2(u)_y = 0, zero terms dropped."""
    powers = (u, u**2, u**3)
    terms = [dt if dt is not None else pde.dt(u)]
    if a != 0.0:
        terms.append(-a * pde.laplacian(u))
    terms += [float(c) * p for c, p in zip(c0, powers, strict=True) if c != 0.0]
    if source is not None and np.any(source != 0.0):
        terms.append(pde.field(source))
    for coefs, d in ((c1, pde.dx), (c2, pde.dy)):
        flux = [float(c) * p for c, p in zip(coefs, powers, strict=True) if c != 0.0]
        if flux:
            terms.append(d(sum(flux[1:], flux[0])))
    pde.eq(sum(terms[1:], terms[0]))


def _dcr_scalars(p: DCRBatch, b: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    return float(p.a[b]), p.c0[b].numpy(), p.c1[b].numpy(), p.c2[b].numpy()


def dcr_periodic_pde(p: DCRBatch, b: int, resolution: int = 32) -> PDE:
    """Member ``b`` of a periodic DCR batch (fields on the 2G periodic grid)."""
    pde = PDE(domain=Domain.square(periodic=True), resolution=resolution)
    u = pde.unknown("u")
    pde.ic(u, _values(p.u0[b], resolution))
    dcr_equation(pde, u, *_dcr_scalars(p, b), _values(p.source[b], resolution))
    return pde


def dcr_square_pde(p: DCRBatch, edges: BoundaryForms, b: int, resolution: int = 32) -> PDE:
    """Member ``b`` on the non-periodic square (fields on 2G - 1 nodes), one condition per edge.

    ``p.u0`` should already carry the Dirichlet edge values (`impose_square_dirichlet`).
    """
    pde = PDE(domain=Domain.square(periodic=False), resolution=resolution)
    u = pde.unknown("u")
    pde.ic(u, _values(p.u0[b], resolution))
    dcr_equation(pde, u, *_dcr_scalars(p, b), _values(p.source[b], resolution))
    edges.write(pde, u, b, SQUARE_EDGES)
    return pde


def dcr_disk_pde(p: DCRBatch, disk: Disk, circle: BoundaryForms, b: int, resolution: int = 32) -> PDE:
    """Member ``b`` on the disk of `fd2d.Disk` (centre (0.5, 0.5)) with ``circle``'s condition.

    ``p.u0`` should already be as the solver holds it outside the disk (`impose_disk`).
    """
    pde = PDE(domain=Domain.disk(float(disk.radius[b]), (0.5, 0.5)), resolution=resolution)
    u = pde.unknown("u")
    pde.ic(u, _values(p.u0[b], resolution))
    dcr_equation(pde, u, *_dcr_scalars(p, b), _values(p.source[b], resolution))
    circle.write(pde, u, b, ("circle",))
    return pde


# ---- Wave ----------------------------------------------------------------------------------------
def _wave_system(pde: PDE, p: WaveBatch, b: int, resolution: int) -> tuple[Expr, Expr]:
    """u_t - v = 0 and v_t + mu v - c2 Δu + s = 0, with initial u0 and v0."""
    u, v = pde.unknown("u"), pde.unknown("v")
    pde.ic(u, _values(p.u0[b], resolution))
    pde.ic(v, _values(p.v0[b], resolution))
    wave_equations(pde, u, v, float(p.damping[b]), float(p.c2[b]), _values(p.source[b], resolution))
    return u, v


def wave_equations(pde: PDE, u: Expr, v: Expr, mu: float, c2: float, source: np.ndarray | None) -> None:
    """u_t - v = 0 and v_t + mu v - c2 Δu + s = 0, zero terms dropped."""
    pde.eq(pde.dt(u) - v)
    terms = [pde.dt(v)]
    if mu != 0.0:
        terms.append(mu * v)
    terms.append(-c2 * pde.laplacian(u))
    if source is not None and np.any(source != 0.0):
        terms.append(pde.field(source))
    pde.eq(sum(terms[1:], terms[0]))


def wave_periodic_pde(p: WaveBatch, b: int, resolution: int = 32) -> PDE:
    """Member ``b`` of a periodic Wave batch as the first-order system in (u, v)."""
    pde = PDE(domain=Domain.square(periodic=True), resolution=resolution)
    _wave_system(pde, p, b, resolution)
    return pde


def wave_square_mur_pde(p: WaveBatch, b: int, resolution: int = 32) -> PDE:
    """Member ``b`` on the square with Mur edges u_t + c u_n = 0 and v_t + c v_n = 0, c = sqrt(c2)."""
    pde = PDE(domain=Domain.square(periodic=False), resolution=resolution)
    u, v = _wave_system(pde, p, b, resolution)
    speed = float(np.sqrt(float(p.c2[b])))
    for side in SQUARE_EDGES:
        pde.bc(u, side, "mur", speed=speed)
        pde.bc(v, side, "mur", speed=speed)
    return pde


def wave_disk_mur_pde(p: WaveBatch, disk: Disk, b: int, resolution: int = 32) -> PDE:
    """Member ``b`` on the disk of `fd2d.Disk` with the Mur condition u_t + c u_n = 0 (and v's) on the
    circle, c = sqrt(c2); ``p.u0``, ``p.v0`` as the solver holds them (`impose_disk`)."""
    pde = PDE(domain=Domain.disk(float(disk.radius[b]), (0.5, 0.5)), resolution=resolution)
    u, v = _wave_system(pde, p, b, resolution)
    speed = float(np.sqrt(float(p.c2[b])))
    pde.bc(u, "circle", "mur", speed=speed)
    pde.bc(v, "circle", "mur", speed=speed)
    return pde


def mur_bc(c2: Tensor) -> SquareBC:
    """The solver conditions of `wave_square_mur_pde`: gamma u_t + u_n = 0 on every edge, gamma = 1/c."""
    zero = torch.zeros(c2.shape[0], 4, dtype=torch.float64)
    gamma = (1.0 / c2.sqrt())[:, None].expand(-1, 4).clone()
    return SquareBC(torch.zeros(c2.shape[0], 4, dtype=torch.bool), zero, zero.clone(), gamma)


# ---- MV-DCR --------------------------------------------------------------------------------------
def mv_dcr_pde(p: MVDCRBatch, b: int, resolution: int = 32) -> PDE:
    """Member ``b`` of a periodic MV-DCR batch: K unknowns u0..u{K-1}, equation k as in the module doc."""
    k_num = p.u0.shape[1]
    pde = PDE(domain=Domain.square(periodic=True), resolution=resolution)
    us = [pde.unknown(f"u{k}") for k in range(k_num)]
    for k, u in enumerate(us):
        pde.ic(u, _values(p.u0[b, k], resolution))
    prods = [us[i] * us[j] for i, j in pairs(k_num)]  # shared by all equations
    for k, u in enumerate(us):
        terms = [pde.dt(u)]
        a = float(p.a[b, k])
        if a != 0.0:
            terms.append(-a * pde.laplacian(u))
        terms += [float(c) * us[j] for j, c in enumerate(p.lin[b, k].tolist()) if c != 0.0]
        terms += [float(c) * prods[q] for q, c in enumerate(p.q0[b, k].tolist()) if c != 0.0]
        source = _values(p.source[b, k], resolution)
        if np.any(source != 0.0):
            terms.append(pde.field(source))
        for lin, quad, d in ((p.flux_x, p.qx, pde.dx), (p.flux_y, p.qy, pde.dy)):
            flux = [float(c) * us[j] for j, c in enumerate(lin[b, k].tolist()) if c != 0.0]
            flux += [float(c) * prods[q] for q, c in enumerate(quad[b, k].tolist()) if c != 0.0]
            if flux:
                terms.append(d(sum(flux[1:], flux[0])))
        pde.eq(sum(terms[1:], terms[0]))
    return pde
