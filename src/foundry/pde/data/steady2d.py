"""Steady (time-independent) 2-D diffusion-convection-reaction problems: solvers, sampler, PDE builders.

Equation, per member b (our choice: the DCR family's form without u_t and with linear terms only,
constant scalar coefficients):

    -a (u_xx + u_yy) + c0 u + (c1 u)_x + (c2 u)_y + s(x, y) = 0

The unknown has no time derivative, so its `PDE` takes no initial condition (``PDE.steady`` is True,
the graph has no ``ic`` node); the model predicts u(x, y) at t = 0 for it.

Solvers (batched over B members, torch float64 in and out; each member is one direct sparse solve,
``scipy.sparse.linalg.splu``; ``ok`` [B] is False when the factorisation fails (singular matrix),
the result is non-finite, its relative residual exceeds 1e-8 or |u| > `fd2d.U_MAX`):

* `solve_steady_periodic`: the periodic grid (i / n, j / n) of `spectral2d.grid`; Fourier
  collocation, exact for the discrete problem: u^ = -s^ / (a |k|^2 + c0 + i (c1 kx + c2 ky)). The
  first-derivative wavenumber is zero on the Nyquist row/column (a real field cannot carry its odd
  part). Needs c0 > 0 (else the mean mode is undetermined): ValueError otherwise.
* `solve_steady_square`: the n x n node grid of `fd2d.node_grid`, per-edge conditions of
  `fd2d.SquareBC` (Dirichlet u + beta = 0, or Robin ∂_n u + alpha u + beta = 0, outward normal).
  5-point Laplacian and central first differences everywhere; Robin edge nodes use the ghost node
  u_ghost = u_inner - 2 h (alpha u + beta) of `fd2d._axis_operator` in both the Laplacian and the
  first difference (which then equals the condition's normal derivative). Dirichlet edge nodes hold
  -beta (a corner with a Dirichlet y-edge takes the y-edge's value, as `fd2d.solve_dcr_square`).
  Second order.
* `solve_steady_disk`: the disk of `fd2d.Disk` on the node grid. Dirichlet members: fd2d's staircase
  (nodes with signed distance >= 0 hold the value; 5-point Laplacian and central differences at the
  nodes inside): **first order**, as fd2d. Robin/Neumann members: fd2d's symmetric cut-cell finite
  volumes (`fd2d._disk_geometry`: cell areas V, face fractions g, arc lengths L) for the diffusion
  and boundary terms, c0 V u for the reaction, V s for the source. Convection (our choice): flux form
  with face values the mean of the two nodes, c g h (u_P + u_N) / 2 per face, and the arc's flux
  taken with the cell's own node value; since the arc's integral of (c1, c2).n is minus the faces'
  (divergence theorem for a constant vector), a cell gets c1 h [g_e (u_E - u_P) + g_w (u_P - u_W)] / 2
  + (same in y): the central difference h^2 c1 u_x in full cells, exact on constants. Measured second
  order (tests). Output: 0 at every node with signed distance >= 0 (outside or on the circle), for
  both kinds; the inside mask is ``disk.mask(n)``.

Sampler `sample_steady` (our choices): a log-uniform in [3e-2, 1]. Checked (n = 63 vs 125, same
members): with the lower end 1e-2 the convective boundary layer a / |c| (about one grid step at
n = 63) made coarse/fine differences up to 9% on Robin disk members with convection (a ~ 0.015);
with 3e-2 (cell Peclet |c| h / (2 a) <= 0.27, layer >= 2 h) that member differs by 2%, the square's
worst by 0.6%, and the largest remaining difference is a Dirichlet (staircase, first-order) disk.
c1, c2 each U[-1, 1] and zero with probability 1/2; c0 U[0.1, 1] on the periodic square; on the
square and disk c0 = 0 with probability 1/2 (else U[0.1, 1]), except members whose conditions are
all Neumann (no Dirichlet piece, every alpha = 0), which always get c0 > 0 (unique solution);
s a `families2d.random_field` (GRF or sine sum, sigma = 1), always present (with zero boundary data
the solution would otherwise vanish); on the square/disk it is drawn periodic on n - 1 points and
closed to n nodes (`conditions2d.close_nodes`). Conditions: `conditions2d.sample_conditions` (4 edges, or 1
circle), disk radius U`conditions2d.DISK_RADIUS`, as the DCR square/disk files. About 2% of the
members come out not ok (measured at n = 63/64): |u| > U_MAX where c0 is 0 or small and a is small.

Builders `steady_equation` / `steady_pde` write a member as `pde2d_builders.dcr_equation` /
`dcr_square_pde` / `dcr_disk_pde` do, minus u_t and the initial condition; fields are given on the
solver grid (2G periodic points or 2G - 1 nodes) and stored at every second point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu

from foundry.pde.data.conditions2d import DISK_RADIUS, close_nodes, sample_conditions
from foundry.pde.data.families2d import random_field, uniform
from foundry.pde.data.fd2d import Disk, SquareBC, _disk_geometry
from foundry.pde.data.pde2d_builders import BoundaryForms, _values
from foundry.pde.data.spectral2d import _check_frame, wavenumbers
from foundry.pde.graph.domain import SQUARE_EDGES, Domain
from foundry.pde.graph.symbolic import PDE, Expr

Tensor = torch.Tensor

__all__ = [
    "A_RANGE",
    "C0_RANGE",
    "SteadyBatch",
    "sample_steady",
    "solve_steady",
    "solve_steady_disk",
    "solve_steady_periodic",
    "solve_steady_square",
    "steady_equation",
    "steady_pde",
]

A_RANGE = (3e-2, 1.0)
C0_RANGE = (0.1, 1.0)
RESIDUAL_TOL = 1e-8


def _np(v: Tensor) -> np.ndarray:
    return v.detach().to("cpu", torch.float64).numpy()


def _direct(mat: sp.spmatrix, rhs: np.ndarray) -> tuple[np.ndarray, bool]:
    """Sparse LU solve; (solution, ok) with ok False on a singular matrix or a large residual."""
    mat = mat.tocsc()
    try:
        x = splu(mat).solve(rhs)
    except RuntimeError:  # "Factor is exactly singular"
        return np.zeros_like(rhs), False
    if not np.all(np.isfinite(x)):
        return np.zeros_like(rhs), False
    res = np.linalg.norm(mat @ x - rhs)
    return x, bool(res <= RESIDUAL_TOL * max(np.linalg.norm(rhs), np.linalg.norm(mat @ x), 1e-300))


def _scalars(*vs: Tensor) -> list[np.ndarray]:
    return [_np(v).reshape(-1) for v in vs]


# ---- periodic ------------------------------------------------------------------------------------
def solve_steady_periodic(a: Tensor, c0: Tensor, c1: Tensor, c2: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """Solve -a Δu + c0 u + c1 u_x + c2 u_y + s = 0 on the periodic grid (i / n, j / n), spectrally.

    a, c0, c1, c2 : [B]; s : [B, n, n]. Returns u [B, n, n] and ok [B]. Raises ValueError if any
    c0 <= 0 (the mean mode is then undetermined or the problem not coercive).
    """
    if bool((c0 <= 0).any()):
        raise ValueError("the periodic steady problem needs c0 > 0 for a unique solution")
    s = s.to(torch.float64)
    n = s.shape[-1]
    kx, ky = wavenumbers(n, s.device)
    kx1, ky1 = kx.clone(), ky.clone()
    if n % 2 == 0:  # the Nyquist row/column has no odd (derivative) part on a real grid
        kx1[n // 2] = 0.0
        ky1[:, n // 2] = 0.0
    per = [v.to(s.device, torch.float64)[:, None, None] for v in (a, c0, c1, c2)]
    symbol = per[0] * (kx**2 + ky**2) + per[1] + 1j * (per[2] * kx1 + per[3] * ky1)
    u = torch.fft.irfft2(-torch.fft.rfft2(s) / symbol, s=(n, n))
    return u, _check_frame(u, torch.ones(u.shape[0], dtype=torch.bool, device=u.device))


# ---- square --------------------------------------------------------------------------------------
def _axis(
    n: int, h: float, dirichlet, alpha, beta
) -> tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix, np.ndarray]:
    """1-D second and first differences with ghost-node Robin ends: (D2, r2, D1, r1), so that the
    discrete u'' = D2 u + r2 and u' = D1 u + r1 (rows of Dirichlet ends are replaced later)."""
    i = np.arange(n)
    d2 = sp.lil_matrix((n, n))
    d1 = sp.lil_matrix((n, n))
    d2[i, i] = -2.0 / h**2
    d2[i[1:], i[:-1]] = 1.0 / h**2
    d2[i[:-1], i[1:]] = 1.0 / h**2
    d1[i[1:], i[:-1]] = -0.5 / h
    d1[i[:-1], i[1:]] = 0.5 / h
    r2, r1 = np.zeros(n), np.zeros(n)
    for end, (node, inner, sign) in enumerate(((0, 1, 1.0), (n - 1, n - 2, -1.0))):
        if dirichlet[end]:
            continue
        al, be = float(alpha[end]), float(beta[end])
        # ghost = u_inner - 2 h (alpha u_node + beta); outward normal derivative -sign * u'
        d2[node, inner] = 2.0 / h**2
        d2[node, node] = -(2.0 + 2.0 * h * al) / h**2
        r2[node] = -2.0 * be / h
        d1[node, inner] = 0.0
        d1[node, node] = sign * al
        r1[node] = sign * be
    return d2.tocsr(), r2, d1.tocsr(), r1


def _square_dirichlet(n: int, dirichlet, beta) -> tuple[np.ndarray, np.ndarray]:
    """Held mask [n, n] and values (``beta`` [4, n] along the edges): x-edges first, then y-edges (a
    Dirichlet y-edge wins a corner)."""
    held = np.zeros((n, n), dtype=bool)
    val = np.zeros((n, n))
    for e, (axis, idx) in enumerate(((0, 0), (0, n - 1), (1, 0), (1, n - 1))):
        if dirichlet[e]:
            sl = (idx, slice(None)) if axis == 0 else (slice(None), idx)
            held[sl] = True
            val[sl] = -beta[e]
    return held, val


def solve_steady_square(
    bc: SquareBC, a: Tensor, c0: Tensor, c1: Tensor, c2: Tensor, s: Tensor
) -> tuple[Tensor, Tensor]:
    """Solve -a Δu + c0 u + c1 u_x + c2 u_y + s = 0 on the unit square's node grid, per-edge conditions.

    bc : `fd2d.SquareBC` (``beta`` [B, 4] or [B, 4, n] along the edges; ``gamma`` None or zero);
    a, c0, c1, c2 : [B];
    s : [B, n, n] on `fd2d.node_grid`. Returns u [B, n, n] (Dirichlet edges hold -beta) and ok [B].
    """
    if bc.gamma is not None and bool((bc.gamma != 0).any()):
        raise ValueError("a steady problem has no u_t: Mur conditions (gamma != 0) do not apply")
    bsz, n, _ = s.shape
    h = 1.0 / (n - 1)
    eye = sp.identity(n, format="csr")
    big_eye = sp.identity(n * n, format="csr")
    dirichlet = bc.dirichlet.detach().cpu().numpy()
    alpha, beta, ss = _np(bc.alpha), _np(bc.beta_nodes(n)), _np(s)  # beta [B, 4, n] along the edges
    aa, k0, k1, k2 = _scalars(a, c0, c1, c2)
    out = np.zeros((bsz, n, n))
    oks = np.zeros(bsz, dtype=bool)
    for b in range(bsz):
        # the Robin rows' constants are linear in beta: unit values, then beta along each edge
        dx2, ux2, dx1, ux1 = _axis(n, h, dirichlet[b, :2], alpha[b, :2], np.ones(2))
        dy2, uy2, dy1, uy1 = _axis(n, h, dirichlet[b, 2:], alpha[b, 2:], np.ones(2))
        rx2, rx1, ry2, ry1 = (np.zeros((n, n)) for _ in range(4))
        for end, node in enumerate((0, n - 1)):
            rx2[node], rx1[node] = ux2[node] * beta[b, end], ux1[node] * beta[b, end]
            ry2[:, node], ry1[:, node] = uy2[node] * beta[b, 2 + end], uy1[node] * beta[b, 2 + end]
        mat = (
            -aa[b] * (sp.kron(dx2, eye) + sp.kron(eye, dy2))
            + k0[b] * big_eye
            + k1[b] * sp.kron(dx1, eye)
            + k2[b] * sp.kron(eye, dy1)
        )
        const = -aa[b] * (rx2 + ry2) + k1[b] * rx1 + k2[b] * ry1 + ss[b]
        held, val = _square_dirichlet(n, dirichlet[b], beta[b])
        keep = sp.diags((~held).reshape(-1).astype(np.float64))
        mat = keep @ mat + sp.diags(held.reshape(-1).astype(np.float64))
        rhs = np.where(held, val, -const).reshape(-1)
        x, ok = _direct(mat, rhs)
        out[b] = x.reshape(n, n)
        oks[b] = ok
    u = torch.from_numpy(out)
    return u, _check_frame(u, torch.from_numpy(oks))


# ---- disk ----------------------------------------------------------------------------------------
def _faces(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices of the node pairs (P, N) across the interior x-faces and y-faces."""
    idx = np.arange(n * n).reshape(n, n)
    return idx[:-1, :].reshape(-1), idx[1:, :].reshape(-1), idx[:, :-1].reshape(-1), idx[:, 1:].reshape(-1)


def _face_matrix(n, gxi, gyi, diff: float, cx: float, cy: float) -> sp.csr_matrix:
    """Sum over faces (P low, N high, fraction g) of -diff g (u_N - u_P) in row P and +diff g (u_N - u_P)
    in row N, plus the convection c g (u_N - u_P) / 2 in both rows (see the module docstring)."""
    px, nx, py, ny = _faces(n)
    rows, cols, vals = [], [], []
    for p, q, g, c in ((px, nx, gxi, cx), (py, ny, gyi, cy)):
        lo, hi = (-diff + c) * g, (diff + c) * g  # coefficient of (u_N - u_P) in rows P and N
        rows += [p, p, q, q]
        cols += [q, p, q, p]
        vals += [lo, -lo, hi, -hi]
    m = n * n
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m))


def solve_steady_disk(
    disk: Disk, a: Tensor, c0: Tensor, c1: Tensor, c2: Tensor, s: Tensor, zero_outside: bool = True
) -> tuple[Tensor, Tensor]:
    """Solve -a Δu + c0 u + c1 u_x + c2 u_y + s = 0 on disks about (0.5, 0.5), Dirichlet or Robin.

    disk : `fd2d.Disk` (radius <= 0.5; ``gamma`` None or zero); a, c0, c1, c2 : [B]; s : [B, n, n] on
    `fd2d.node_grid`. Returns u [B, n, n], 0 at the nodes with signed distance >= 0 (inside mask:
    ``disk.mask(n)``), and ok [B]. Discretisation: module docstring. ``zero_outside`` False keeps the
    solver's values there (Dirichlet: the boundary value; Robin: the cut-cell value of nodes just
    outside the circle whose cell meets the disk, 0 beyond).
    """
    if (disk.radius > 0.5).any():
        raise ValueError("disk radius must be <= 0.5")
    if disk.gamma is not None and bool((disk.gamma != 0).any()):
        raise ValueError("a steady problem has no u_t: Mur conditions (gamma != 0) do not apply")
    bsz, n, _ = s.shape
    h = 1.0 / (n - 1)
    dirichlet, value, alpha, beta, _ = disk.conditions("cpu", torch.float64)
    dirichlet = dirichlet.numpy()
    value, alpha, beta = _np(value), _np(alpha), _np(beta)
    vol_t, gx_t, gy_t, len_t = _disk_geometry(disk.radius.to("cpu", torch.float64), n)
    vol, gx, gy, length = _np(vol_t) / h**2, _np(gx_t), _np(gy_t), _np(len_t)
    inside = _np(disk.mask(n))  # sdf < 0
    ss = _np(s)
    aa, k0, k1, k2 = _scalars(a, c0, c1, c2)
    out = np.zeros((bsz, n, n))
    oks = np.zeros(bsz, dtype=bool)
    ones = np.ones((n + 1, n))
    for b in range(bsz):
        diff = aa[b] / h**2
        cx, cy = 0.5 * k1[b] / h, 0.5 * k2[b] / h
        if dirichlet[b]:
            m = inside[b]
            faces = _face_matrix(n, ones[1:-1].reshape(-1), ones[1:-1].T.reshape(-1), diff, cx, cy)
            # neighbours across faces are unknowns held at the value, so a full-grid stencil is exact
            mat = faces + sp.diags(np.full(n * n, k0[b]))
            held = 1.0 - m.reshape(-1)
            mat = sp.diags(m.reshape(-1)) @ mat + sp.diags(held)
            rhs = np.where(m > 0, -ss[b], value[b]).reshape(-1)
        else:
            active = (vol[b] > 0).astype(np.float64)
            faces = _face_matrix(n, gx[b, 1:-1].reshape(-1), gy[b, :, 1:-1].reshape(-1), diff, cx, cy)
            diag = diff * alpha[b] * length[b] + k0[b] * vol[b]
            mat = faces + sp.diags(diag.reshape(-1))
            mat = sp.diags(active.reshape(-1)) @ mat + sp.diags(1.0 - active.reshape(-1))
            rhs = (active * (-diff * beta[b] * length[b] - vol[b] * ss[b])).reshape(-1)
        x, ok = _direct(mat, rhs)
        out[b] = x.reshape(n, n) * inside[b] if zero_outside else x.reshape(n, n)
        oks[b] = ok
    u = torch.from_numpy(out)
    return u, _check_frame(u, torch.from_numpy(oks))


# ---- sampler -------------------------------------------------------------------------------------
@dataclass
class SteadyBatch:
    """B steady members on one domain ('periodic', 'square' or 'disk'): a, c0, c1, c2 [B], source
    [B, n, n] on the solver grid (2G periodic points or 2G - 1 nodes); ``edges`` the square's four
    edges or the disk's circle (reference forms), ``disk`` the `fd2d.Disk` (radius and its conditions)."""

    domain: str
    a: Tensor
    c0: Tensor
    c1: Tensor
    c2: Tensor
    source: Tensor
    edges: BoundaryForms | None = None
    disk: Disk | None = None


def _half_zero(gen: torch.Generator, v: Tensor) -> Tensor:
    return v * (torch.rand(v.shape, generator=gen, dtype=torch.float64) < 0.5)


def sample_steady(gen: torch.Generator, batch: int, n: int, domain: str) -> SteadyBatch:
    """Draw ``batch`` steady members on the n-point solver grid of ``domain`` (choices: module docstring)."""
    if domain not in ("periodic", "square", "disk"):
        raise ValueError(f"domain={domain!r}: 'periodic', 'square' or 'disk'")
    a = uniform(gen, (batch,), math.log(A_RANGE[0]), math.log(A_RANGE[1])).exp()
    c0 = uniform(gen, (batch,), *C0_RANGE)
    c1 = _half_zero(gen, uniform(gen, (batch,), -1.0, 1.0))
    c2 = _half_zero(gen, uniform(gen, (batch,), -1.0, 1.0))
    if domain == "periodic":
        return SteadyBatch(domain, a, c0, c1, c2, random_field(gen, batch, n))
    source = close_nodes(random_field(gen, batch, n - 1))
    zero_c0 = torch.rand(batch, generator=gen, dtype=torch.float64) < 0.5
    if domain == "square":
        edges = sample_conditions(gen, batch, 4)
        bc = edges.solver_bc()
        neumann = ~bc.dirichlet.any(1) & (bc.alpha == 0).all(1)
        return SteadyBatch(domain, a, torch.where(zero_c0 & ~neumann, 0.0, c0), c1, c2, source, edges)
    circle = sample_conditions(gen, batch, 1)
    disk = circle.solver_disk(uniform(gen, (batch,), *DISK_RADIUS))
    dirichlet, _, alpha, _, _ = disk.conditions("cpu", torch.float64)
    neumann = ~dirichlet & (alpha == 0)
    return SteadyBatch(domain, a, torch.where(zero_c0 & ~neumann, 0.0, c0), c1, c2, source, circle, disk)


def solve_steady(p: SteadyBatch) -> tuple[Tensor, Tensor]:
    """Solve a drawn batch on its domain: u [B, n, n], ok [B]."""
    args = (p.a, p.c0, p.c1, p.c2, p.source)
    if p.domain == "periodic":
        return solve_steady_periodic(*args)
    if p.domain == "square":
        return solve_steady_square(p.edges.solver_bc(), *args)
    return solve_steady_disk(p.disk, *args)


# ---- builders ------------------------------------------------------------------------------------
def steady_equation(
    pde: PDE, u: Expr, a: float, c0: float, c1: float, c2: float, source: np.ndarray | None
) -> None:
    """-a Δu + c0 u + s + (c1 u)_x + (c2 u)_y = 0 (as `pde2d_builders.dcr_equation`, no u_t), zero
    terms dropped."""
    terms = []
    if a != 0.0:
        terms.append(-float(a) * pde.laplacian(u))
    if c0 != 0.0:
        terms.append(float(c0) * u)
    if source is not None and np.any(source != 0.0):
        terms.append(pde.field(source))
    for c, d in ((c1, pde.dx), (c2, pde.dy)):
        if c != 0.0:
            terms.append(d(float(c) * u))
    if not terms:
        raise ValueError("every term of the steady equation is zero")
    pde.eq(sum(terms[1:], terms[0]))


def steady_pde(p: SteadyBatch, b: int, resolution: int = 32) -> PDE:
    """Member ``b`` of a steady batch as a `PDE` (no initial condition; conditions as the DCR builders)."""
    if p.domain == "periodic":
        domain = Domain.square(periodic=True)
    elif p.domain == "square":
        domain = Domain.square(periodic=False)
    else:
        domain = Domain.disk(float(p.disk.radius[b]), (0.5, 0.5))
    pde = PDE(domain=domain, resolution=resolution)
    u = pde.unknown("u")
    scal = (float(v[b]) for v in (p.a, p.c0, p.c1, p.c2))
    steady_equation(pde, u, *scal, _values(p.source[b], resolution))
    if p.domain == "square":
        p.edges.write(pde, u, b, SQUARE_EDGES)
    elif p.domain == "disk":
        p.edges.write(pde, u, b, ("circle",))
    return pde
