"""Batched torch finite-difference DCR and wave solvers on non-periodic 2D domains (PDEformer-2 data).

Equation, per sample b (the periodic twin is `spectral2d.solve_dcr`):

    u_t - a Δu + f0(u) + s(x, y) + f1(u)_x + f2(u)_y = 0,    f_i(u) = c_i1 u + c_i2 u^2 + c_i3 u^3

Domains (both on the node grid x_i = i / (n - 1), i = 0..n-1, boundaries included, h = 1 / (n - 1)):

* `SquareBC`: the unit square, non-periodic on both axes, one condition per edge with scalar
  alpha per sample and edge and beta a scalar or a field along the edge: Dirichlet u + beta = 0 (the
  reference's D-type Robin with b = 0) or Robin ∂_n u + alpha u + beta = 0 (N-type Robin; Neumann for
  alpha = 0; D-type with b != 0 divided by b). ∂_n is the outward normal derivative. Robin edges use a
  ghost node and central differences; Dirichlet edge nodes hold -beta. Second order in space.
* `Disk`: centre (0.5, 0.5), radius R per sample, one condition on the circle per sample (alpha a
  scalar, value / beta a scalar or a field on the node grid, see `Disk`). Dirichlet u = value: nodes
  with signed distance >= 0 (outside or on the circle) hold the boundary value: a staircase
  boundary, so the boundary position errs by O(h) and the solution is **first order** in space
  (measured in the benchmark and tested); interior stencils are the standard 5-point ones. Robin ∂_n
  u + alpha u + beta = 0 (Neumann for alpha = 0; the reference's N- and D-type forms via
  `Disk.from_n_type` / `Disk.from_d_type`): symmetric cut-cell finite volumes (Papac, Gibou and
  Ratsch, JCP 229 (2010)) with the exact cell areas, face fractions and arc lengths of the circle;
  **second order** in space (measured in the benchmark and tested); sum(V u) is conserved under
  Neumann. A batch may mix the two kinds (it is split and each part solved as a batch).

Time stepping: IMEX-SBDF2 (one SBDF1 start step). Implicit: diffusion a Δ_h and the linear reaction
c01 u (on the Robin disk also the boundary term alpha u). Explicit: the rest of f0, the source and
the flux derivatives (central differences inside, second-order one-sided on Robin edges). The implicit
solve is direct on the square (Δ_h is a Kronecker sum of two 1D operators, each symmetrisable and
diagonalised once per sample with `eigh`, so a solve is four batched n x n matmuls) and a fixed number
of batched conjugate-gradient iterations on the disk (the masked 5-point operator and the cut-cell
matrix are symmetric positive definite; the count is chosen once before the loop, from the condition
number bound (Dirichlet) or from a probe solve with a random right-hand side (Robin, Jacobi
preconditioned), so the loop has no host synchronisation).

The explicit central flux differences need a cell Peclet number |f'(u)| h / (2 a) of order 2 or less;
beyond it they oscillate (see docs/pde2.md: many random members with a ~ 1e-3 fail on coarse grids).

`solve_wave_square`: u_tt + mu u_t - c2 Δu + s = 0 on the square by leapfrog with the same ghost nodes
and per-edge Mur conditions gamma u_t + ∂_n u + alpha u + beta = 0 (`SquareBC.gamma`).
`solve_wave_disk`: the same on the disk, Dirichlet (staircase) or Robin/Mur (`Disk.gamma`,
`Disk.from_mur`) with the cut cells, small cells stabilised by a corrected mass clamp (second order).

Blow-ups are handled as in `spectral2d`: a sample leaving |u| <= U_MAX is flagged, frozen at its
last good frame and its state zeroed; every operation is per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from foundry.pde.data.spectral2d import _check_frame, _steps_per_save
from foundry.pde.data.spectral_solver import U_MAX

Tensor = torch.Tensor

__all__ = [
    "U_MAX",
    "Disk",
    "SquareBC",
    "node_grid",
    "solve_dcr_disk",
    "solve_dcr_square",
    "solve_wave_disk",
    "solve_wave_square",
]

# edge order used by every [B, 4] tensor below
EDGES = ("x=0", "x=1", "y=0", "y=1")


def node_grid(
    n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Coordinates (x, y), each [n, n], of the nodes (i / (n - 1), j / (n - 1)) on [0, 1]^2."""
    c = torch.arange(n, device=device, dtype=dtype) / (n - 1)
    return torch.meshgrid(c, c, indexing="ij")


# ---- domains -------------------------------------------------------------------------------------
@dataclass
class SquareBC:
    """Per-edge conditions on the unit square, in the edge order (x=0, x=1, y=0, y=1).

    On an edge with ``dirichlet`` True: u + beta = 0. Otherwise: gamma u_t + ∂_n u + alpha u + beta = 0
    (outward normal; alpha > 0 is dissipative, alpha = beta = 0 is homogeneous Neumann). ``gamma``
    (None: zero) gives the reference's Mur condition and is honoured only by `solve_wave_square`;
    gamma = 1 / c is the first-order absorbing condition for waves of speed c.

    Shapes: ``dirichlet``, ``alpha``, ``gamma`` [B, 4] (one scalar per edge: the square solvers
    diagonalise one operator per axis, which a coefficient varying along the edge would break).
    ``beta`` [B, 4] (a scalar per edge) or [B, 4, n] (a field: its value at each node along the edge,
    n the node grid size; edges x=0 and x=1 are indexed by the y node j, edges y=0 and y=1 by the x node
    i; on a corner node both edges' values enter their own axis' stencil, and a Dirichlet corner takes
    the y-edge's value). A field equal to a constant gives bit-identical results to the scalar.
    """

    dirichlet: Tensor
    alpha: Tensor
    beta: Tensor
    gamma: Tensor | None = None

    @classmethod
    def uniform(cls, batch: int, kind: str, alpha: float = 0.0, beta: float = 0.0) -> SquareBC:
        """The same condition on all four edges of every sample; kind 'dirichlet' or 'robin'."""
        if kind not in ("dirichlet", "robin"):
            raise ValueError(f"kind={kind!r}")
        full = torch.ones(batch, 4, dtype=torch.float64)
        return cls(torch.full((batch, 4), kind == "dirichlet"), alpha * full, beta * full)

    @classmethod
    def from_d_type(cls, b: Tensor, c: Tensor) -> SquareBC:
        """The reference's D-type Robin u + b ∂_n u + c = 0 (b [B, 4], c as ``beta``); Dirichlet if b == 0."""
        dirichlet = b == 0
        safe_b = torch.where(dirichlet, torch.ones_like(b), b)
        alpha = torch.where(dirichlet, 0.0, 1.0 / safe_b)
        d, sb = (dirichlet, safe_b) if c.ndim == 2 else (dirichlet[..., None], safe_b[..., None])
        return cls(dirichlet, alpha, torch.where(d, c, c / sb))

    @classmethod
    def from_n_type(cls, a: Tensor, c: Tensor) -> SquareBC:
        """The reference's N-type Robin a u + ∂_n u + c = 0 (a [B, 4], c [B, 4] or [B, 4, n])."""
        return cls(torch.zeros(a.shape, dtype=torch.bool), a, c)

    @classmethod
    def from_mur(cls, a: Tensor, b: Tensor, c: Tensor) -> SquareBC:
        """The reference's Mur condition u_t + a u + b ∂_n u + c = 0 (a, b [B, 4], b != 0; c as ``beta``)."""
        return cls(
            torch.zeros(a.shape, dtype=torch.bool), a / b, c / (b if c.ndim == 2 else b[..., None]), 1.0 / b
        )

    def to(self, device: torch.device, dtype: torch.dtype) -> SquareBC:
        gamma = self.gamma.to(device, dtype) if self.gamma is not None else None
        return SquareBC(
            self.dirichlet.to(device), self.alpha.to(device, dtype), self.beta.to(device, dtype), gamma
        )

    def beta_nodes(self, n: int) -> Tensor:
        """``beta`` as a field [B, 4, n] (a scalar per edge repeated along it)."""
        if self.beta.ndim == 2:
            return self.beta[:, :, None].expand(*self.beta.shape, n)
        if self.beta.ndim != 3 or self.beta.shape[1:] != (4, n):
            raise ValueError(f"SquareBC.beta must be [B, 4] or [B, 4, {n}], got {tuple(self.beta.shape)}")
        return self.beta


@dataclass
class Disk:
    """Disk of radius ``radius`` [B] (<= 0.5) about (0.5, 0.5) with one condition on its circle per sample.

    ``Disk(radius, value)``: Dirichlet u = ``value`` (staircase boundary, first order). With
    ``alpha`` [B] and ``beta``: Robin ∂_n u + alpha u + beta = 0 (outward normal; Neumann for alpha = 0),
    solved by the symmetric cut-cell finite volumes of `_disk_geometry`; ``dirichlet`` [B] bool (None:
    False everywhere when ``alpha`` is given) picks Dirichlet samples in a mixed batch, which use
    ``value``. ``gamma`` [B] (None: zero) adds gamma u_t to the Robin condition (Mur; `solve_wave_disk`
    only). The reference's forms: `from_d_type`, `from_n_type`, `from_mur`.

    ``value`` and ``beta`` are [B] (a constant on the circle) or [B, n, n] (a field on the node grid, n
    the solver's grid size; it need only be meaningful near the circle). Dirichlet: each node held at
    the boundary value (signed distance >= 0) takes the field at that node; when the field is the
    solution's own smooth extension the staircase is then exact data and the scheme second order, in
    general (e.g. boundary data extended constant along the normals) first order like the staircase.
    Robin: the boundary flux of each cut cell, ∫ beta ds over its arc, is taken as L beta(node), the
    field at the cell's node (which lies within h / sqrt(2) of the arc): an O(h^2) flux error per cut
    cell, the order of the cut-cell scheme's own face-flux errors, so the solution keeps the scheme's
    order: in tests/pde/test_fd2d_field_bc.py (steady manufactured u, R = 0.4, n = 17, 33, 65) the max
    error falls 3.3e-3, 1.2e-3, 3.2e-4 (orders 1.5, 1.85), as noisy as with scalar data, whose max-norm
    order also varies with how the circle cuts the grid (about 1.4 at R = 0.375, measured). ``alpha``
    and ``gamma`` stay scalars per sample. A field equal to a constant gives bit-identical results to
    the scalar.
    """

    radius: Tensor
    value: Tensor | None = None
    alpha: Tensor | None = None
    beta: Tensor | None = None
    dirichlet: Tensor | None = None
    gamma: Tensor | None = None

    @classmethod
    def from_n_type(cls, radius: Tensor, a: Tensor, c: Tensor) -> Disk:
        """The reference's N-type Robin a u + ∂_n u + c = 0 on the circle (a [B], c [B] or [B, n, n])."""
        return cls(radius, torch.zeros_like(a), a, c, torch.zeros(a.shape, dtype=torch.bool))

    @classmethod
    def from_d_type(cls, radius: Tensor, b: Tensor, c: Tensor) -> Disk:
        """The reference's D-type Robin u + b ∂_n u + c = 0 (b [B]; c [B] or [B, n, n]): u = -c if b == 0."""
        dirichlet = b == 0
        safe_b = torch.where(dirichlet, torch.ones_like(b), b)
        alpha = torch.where(dirichlet, 0.0, 1.0 / safe_b)
        d, sb = (dirichlet, safe_b) if c.ndim == 1 else (dirichlet[:, None, None], safe_b[:, None, None])
        return cls(radius, -c, alpha, torch.where(d, 0.0, c / sb), dirichlet)

    @classmethod
    def from_mur(cls, radius: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Disk:
        """The reference's Mur condition u_t + a u + b ∂_n u + c = 0 (a, b [B], b != 0; c as ``beta``)."""
        beta = c / (b if c.ndim == 1 else b[:, None, None])
        return cls(radius, torch.zeros_like(a), a / b, beta, torch.zeros(a.shape, dtype=torch.bool), 1.0 / b)

    def conditions(self, device, dtype) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(dirichlet [B] bool, value, alpha, beta, gamma) with the defaults filled in.

        All [B] except ``value`` and ``beta``, which keep their shape ([B] or [B, n, n]; `_as_grid`).
        """
        r = self.radius.to(device, dtype)
        zero = torch.zeros_like(r)

        def get(v: Tensor | None) -> Tensor:
            return v.to(device, dtype) if v is not None else zero

        if self.dirichlet is not None:
            dirichlet = self.dirichlet.to(device)
        else:
            dirichlet = torch.full(r.shape, self.alpha is None, dtype=torch.bool, device=device)
        return dirichlet, get(self.value), get(self.alpha), get(self.beta), get(self.gamma)

    def select(self, index: Tensor) -> Disk:
        """The samples ``index`` (a [B] bool mask or indices) of this batch."""
        fields = (self.radius, self.value, self.alpha, self.beta, self.dirichlet, self.gamma)
        return Disk(*(f[index] if f is not None else None for f in fields))

    def sdf(self, n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> Tensor:
        """Signed distance [B, n, n] on the node grid: negative inside, positive outside."""
        x, y = node_grid(n, device, dtype)
        rho = torch.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
        return rho - self.radius.to(device, dtype)[:, None, None]

    def mask(self, n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> Tensor:
        """1.0 on the nodes the Dirichlet solvers evolve (signed distance < 0), 0.0 on those held at value."""
        return (self.sdf(n, device, dtype) < 0).to(dtype)

    def cell_volumes(
        self, n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """Area [B, n, n] of each node's control volume (side h, centred on the node) inside the disk.

        The Robin solvers conserve sum(V u) (homogeneous Neumann, no reaction or source); the sum of V
        is pi R^2 to rounding.
        """
        return _disk_geometry(self.radius.to(device, dtype), n)[0]


def _as_grid(v: Tensor, n: int) -> Tensor:
    """A disk's ``value`` or ``beta`` ([B] or [B, n, n]) as a tensor broadcasting to [B, n, n]."""
    if v.ndim == 1:
        return v[:, None, None]
    if v.ndim != 3 or v.shape[1:] != (n, n):
        raise ValueError(f"Disk value/beta must be [B] or [B, {n}, {n}], got {tuple(v.shape)}")
    return v


def _segment_in_disk(c: Tensor, lo: Tensor, hi: Tensor, radius: Tensor) -> Tensor:
    """Length of {(c, t): lo <= t <= hi} (or its transpose) inside the circle |.| <= radius about 0."""
    s = torch.sqrt(torch.clamp(radius**2 - c**2, min=0.0))
    return torch.clamp(torch.minimum(hi, s) - torch.maximum(lo, -s), min=0.0)


def _disk_geometry(radius: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Exact cut-cell geometry of the disks ``radius`` [B] about (0.5, 0.5) on the n-node grid.

    Node (i, j) owns the square cell of side h centred on it. Returns V [B, n, n] (cell area inside
    the disk), gx [B, n + 1, n] and gy [B, n, n + 1] (length inside the disk of the cell faces
    x = x_i - h/2 and y = y_j - h/2, divided by h: the flux coefficients), and L [B, n, n] (length of
    the circle inside each cell). The area comes from Green's theorem, A = 1/2 ∮ (x dy - y dx), with
    the straight face pieces (their lengths) and the arc pieces (1/2 R^2 dtheta; the arc angles inside
    the cell from the sorted crossings of the circle with the cell's four lines).
    """
    dev, dt = radius.device, radius.dtype
    h = 1.0 / (n - 1)
    rr = radius[:, None, None]
    c = torch.arange(n, device=dev, dtype=dt) * h - 0.5  # node coordinates about the centre
    f = torch.cat([c - h / 2, c[-1:] + h / 2])  # face coordinates, n + 1
    gx = _segment_in_disk(f[None, :, None], (c - h / 2)[None, None, :], (c + h / 2)[None, None, :], rr) / h
    gy = _segment_in_disk(f[None, None, :], (c - h / 2)[None, :, None], (c + h / 2)[None, :, None], rr) / h
    x0, x1 = (c - h / 2)[:, None].expand(n, n), (c + h / 2)[:, None].expand(n, n)
    y0, y1 = (c - h / 2)[None, :].expand(n, n), (c + h / 2)[None, :].expand(n, n)
    r4 = radius[:, None, None, None]
    cands = []
    for v in (x0, x1):
        q = torch.clamp(v / rr, -1.0, 1.0)
        cands += [torch.acos(q), -torch.acos(q)]
    for v in (y0, y1):
        q = torch.clamp(v / rr, -1.0, 1.0)
        cands += [torch.asin(q), math.pi - torch.asin(q)]
    ang = torch.remainder(torch.stack(torch.broadcast_tensors(*cands), dim=-1), 2 * math.pi)
    ends = torch.zeros(*ang.shape[:-1], 1, device=dev, dtype=dt)
    ang, _ = torch.sort(torch.cat([ends, ang, ends + 2 * math.pi], dim=-1), dim=-1)
    mid = 0.5 * (ang[..., 1:] + ang[..., :-1])
    px, py = r4 * torch.cos(mid), r4 * torch.sin(mid)
    inside = (px >= x0[..., None]) & (px <= x1[..., None]) & (py >= y0[..., None]) & (py <= y1[..., None])
    theta = (inside * (ang[..., 1:] - ang[..., :-1])).sum(-1)
    area = (
        0.5 * h * (x1 * gx[:, 1:] - x0 * gx[:, :-1] + y1 * gy[:, :, 1:] - y0 * gy[:, :, :-1])
        + 0.5 * rr**2 * theta
    )
    return torch.clamp(area, min=0.0), gx, gy, rr * theta


# ---- finite differences --------------------------------------------------------------------------
def _diff(f: Tensor, h: float, dim: int) -> Tensor:
    """First derivative along ``dim`` (-2: x, -1: y): central inside, second-order one-sided at the ends."""
    f = f.movedim(dim, -1)
    d = torch.empty_like(f)
    d[..., 1:-1] = (f[..., 2:] - f[..., :-2]) / (2 * h)
    d[..., 0] = (-3 * f[..., 0] + 4 * f[..., 1] - f[..., 2]) / (2 * h)
    d[..., -1] = (3 * f[..., -1] - 4 * f[..., -2] + f[..., -3]) / (2 * h)
    return d.movedim(-1, dim)


def _laplacian_zero_outside(v: Tensor, h: float) -> Tensor:
    """5-point Laplacian with zero values beyond the array."""
    p = torch.nn.functional.pad(v[:, None], (1, 1, 1, 1))[:, 0]
    return (p[:, 2:, 1:-1] + p[:, :-2, 1:-1] + p[:, 1:-1, 2:] + p[:, 1:-1, :-2] - 4 * v) / h**2


def _axis_operator(
    n: int, h: float, dirichlet: Tensor, alpha: Tensor, beta: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """1D second difference with the conditions at both ends of one axis, in symmetrisable form.

    ``dirichlet``, ``alpha``: [B, 2] for the low and high end; ``beta`` [B, 2, m]: the boundary data at
    each of the m nodes of the other axis. Returns eigenvalues lam [B, n], P = W^{-1/2} Q and
    P^{-1} = Q^T W^{1/2} ([B, n, n]) with A = P diag(lam) P^{-1}, and the constant r [B, n, m] such that
    the second difference of u (with its boundary data; column k: the line at the other axis' node k)
    is A u + r.

    Robin end (low, x = 0): the ghost node u_{-1} = u_1 - 2h (alpha u_0 + beta) turns row 0 into
    (2 u_1 - (2 + 2 h alpha) u_0) / h^2 - 2 beta / h; halving that row (weight w_0 = 1/2) makes A
    symmetric. Dirichlet end: node 0 is decoupled (zero row and column; its value is imposed after
    each step) and row 1 receives the boundary value -beta through r.
    """
    bsz = dirichlet.shape[0]
    dev, dt = alpha.device, alpha.dtype
    a = torch.zeros(bsz, n, n, device=dev, dtype=dt)
    idx = torch.arange(n, device=dev)
    a[:, idx, idx] = -2.0 / h**2
    a[:, idx[1:], idx[:-1]] = 1.0 / h**2
    a[:, idx[:-1], idx[1:]] = 1.0 / h**2
    r = torch.zeros(bsz, n, beta.shape[-1], device=dev, dtype=dt)
    w = torch.ones(bsz, n, device=dev, dtype=dt)
    for end, (node, inner) in enumerate(((0, 1), (n - 1, n - 2))):
        d = dirichlet[:, end]
        al, be = alpha[:, end], beta[:, end]
        db = d[:, None]
        # Robin: row `node` = (2 u_inner - (2 + 2 h alpha) u_node) / h^2 - 2 beta / h
        a[:, node, inner] = torch.where(d, 0.0, 2.0 / h**2)
        a[:, node, node] = torch.where(d, 0.0, -(2.0 + 2.0 * h * al) / h**2)
        a[:, inner, node] = torch.where(d, 0.0, 1.0 / h**2)
        r[:, node] = torch.where(db, 0.0, -2.0 * be / h)
        r[:, inner] = r[:, inner] + torch.where(db, -be / h**2, 0.0)
        w[:, node] = torch.where(d, 1.0, 0.5)
    sw = w.sqrt()
    sym = sw[:, :, None] * a / sw[:, None, :]  # W^{1/2} A W^{-1/2}, symmetric
    sym = 0.5 * (sym + sym.transpose(-1, -2))  # remove rounding asymmetry before eigh
    lam, q = torch.linalg.eigh(sym)
    return lam, q / sw[:, :, None], q.transpose(-1, -2) * sw[:, None, :], r


# ---- the shared IMEX loop ------------------------------------------------------------------------
def _imex(
    u0: Tensor,
    explicit: Callable[[Tensor], Tensor],
    solve: Callable[[Tensor, float, float], Tensor],
    impose: Callable[[Tensor], Tensor],
    num_t: int,
    dt: float,
    t_end: float,
) -> tuple[Tensor, Tensor]:
    """SBDF2 loop; ``solve(rhs, coef, scale)`` returns u with (coef - scale L) u = rhs on evolved nodes."""
    bsz = u0.shape[0]
    steps = _steps_per_save(dt, num_t, t_end)
    u = impose(u0)
    out = torch.empty(bsz, num_t, *u0.shape[1:], device=u0.device, dtype=u0.dtype)
    out[:, 0] = u
    ok = _check_frame(u, torch.ones(bsz, dtype=torch.bool, device=u0.device))
    n_prev = explicit(u)
    u_prev, u = u, impose(solve(u + dt * n_prev, 1.0, dt))  # SBDF1 start step
    step = 1
    for frame in range(1, num_t):
        while step < frame * steps:
            n_cur = explicit(u)
            rhs = 4 * u - u_prev + 2 * dt * (2 * n_cur - n_prev)
            u_prev, u, n_prev = u, impose(solve(rhs, 3.0, 2 * dt)), n_cur
            step += 1
        ok = _check_frame(u, ok)
        keep = ok[:, None, None]
        # failed samples: zero state (imposed boundary values stay) so they cannot overflow later steps
        u, u_prev, n_prev = (torch.where(keep, v, torch.zeros_like(v)) for v in (u, u_prev, n_prev))
        out[:, frame] = torch.where(keep, u, out[:, frame - 1])
    return out, ok


def _prepare(
    u0: Tensor, a: Tensor, c0: Tensor, c1: Tensor, c2: Tensor, source: Tensor | None, device, dtype
) -> tuple[torch.device, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    dev = torch.device(device) if device is not None else u0.device
    s = source.to(dev, dtype) if source is not None else None
    u0, a, c0, c1, c2 = (v.to(dev, dtype) for v in (u0, a, c0, c1, c2))
    return dev, u0, a, c0, c1, c2, s


def _explicit_terms(
    c0: Tensor, c1: Tensor, c2: Tensor, source: Tensor | None, h: float, lift: Tensor
) -> Callable[[Tensor], Tensor]:
    """N(u) = -(c02 u^2 + c03 u^3) - s - f1(u)_x - f2(u)_y + lift (the constant part of a Δ_h)."""
    k0, k1, k2 = (c[:, :, None, None] for c in (c0, c1, c2))
    const = lift - source if source is not None else lift

    def explicit(u: Tensor) -> Tensor:
        u2, u3 = u * u, u * u * u
        f1 = k1[:, 0] * u + k1[:, 1] * u2 + k1[:, 2] * u3
        f2 = k2[:, 0] * u + k2[:, 1] * u2 + k2[:, 2] * u3
        return const - k0[:, 1] * u2 - k0[:, 2] * u3 - _diff(f1, h, -2) - _diff(f2, h, -1)

    return explicit


# ---- square --------------------------------------------------------------------------------------
def solve_dcr_square(
    u0: Tensor,
    bc: SquareBC,
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
    """Solve a batch of DCR equations on the unit square with per-edge Dirichlet/Robin conditions.

    Parameters
    ----------
    u0 : [B, n, n]
        Initial fields on `node_grid` (boundaries included). Dirichlet edge nodes are overwritten by
        their boundary value (also in frame 0); on a corner the y-edge's Dirichlet value wins.
    bc : SquareBC
        Conditions per sample and edge: dirichlet, alpha [B, 4]; beta [B, 4] or [B, 4, n] (data per
        node along the edge, `SquareBC`). A field beta enters the Robin ghost rows and the imposed
        Dirichlet values node by node; second order in space as for scalars.
    a, c0, c1, c2, source, num_t, dt, t_end, device, dtype
        As in `spectral2d.solve_dcr`.

    Returns
    -------
    u : [B, num_t, n, n] with u[b, t, i, j] at (i / (n - 1), j / (n - 1)); ok : [B] bool.
    """
    dev, u0, a, c0, c1, c2, source = _prepare(u0, a, c0, c1, c2, source, device, dtype)
    if bc.gamma is not None and bool((bc.gamma != 0).any()):
        raise ValueError("u_t (Mur) terms in the boundary conditions are only supported by solve_wave_square")
    bc = bc.to(dev, dtype)
    n = u0.shape[-1]
    h = 1.0 / (n - 1)
    beta = bc.beta_nodes(n)
    lam_x, px, px_inv, rx = _axis_operator(n, h, bc.dirichlet[:, :2], bc.alpha[:, :2], beta[:, :2])
    lam_y, py, py_inv, ry = _axis_operator(n, h, bc.dirichlet[:, 2:], bc.alpha[:, 2:], beta[:, 2:])
    # eigenvalues of the implicit operator L = a Δ_h - c01
    lam = a[:, None, None] * (lam_x[:, :, None] + lam_y[:, None, :]) - c0[:, 0, None, None]
    # rx [B, i, j], ry [B, j, i]: the constant parts of both second differences, a field on the grid
    lift = a[:, None, None] * (rx + ry.transpose(-1, -2))
    explicit = _explicit_terms(c0, c1, c2, source, h, lift)

    def solve(rhs: Tensor, coef: float, scale: float) -> Tensor:
        hat = px_inv @ rhs @ py_inv.transpose(-1, -2)
        return px @ (hat / (coef - scale * lam)) @ py.transpose(-1, -2)

    # Dirichlet edge values, imposed after each step: x-edges first, then y-edges (corners: y wins)
    masks, vals = [], []
    for e, (dim, idx) in enumerate(((-2, 0), (-2, n - 1), (-1, 0), (-1, n - 1))):
        m = torch.zeros(n, n, device=dev, dtype=torch.bool)
        if dim == -2:
            m[idx, :] = True
        else:
            m[:, idx] = True
        masks.append(m & bc.dirichlet[:, e, None, None])
        vals.append(-(beta[:, e, None, :] if dim == -2 else beta[:, e, :, None]))

    def impose(u: Tensor) -> Tensor:
        for m, v in zip(masks, vals, strict=True):
            u = torch.where(m, v, u)
        return u

    return _imex(u0, explicit, solve, impose, num_t, dt, t_end)


# ---- disk ----------------------------------------------------------------------------------------
def solve_dcr_disk(
    u0: Tensor,
    disk: Disk,
    a: Tensor,
    c0: Tensor,
    c1: Tensor,
    c2: Tensor,
    source: Tensor | None = None,
    num_t: int = 101,
    dt: float = 1e-3,
    t_end: float = 1.0,
    cg_tol: float = 1e-10,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Solve a batch of DCR equations on disks with Dirichlet or Robin conditions on the circle.

    Dirichlet samples (staircase boundary, O(h)): nodes with signed distance >= 0 hold the value;
    the masked 5-point operator is solved by a fixed number of conjugate-gradient iterations.
    Robin samples (∂_n u + alpha u + beta = 0): symmetric cut-cell finite volumes (Papac, Gibou and
    Ratsch, JCP 2010): each node owns the square cell of side h about it; with V its area inside the
    disk, g the inside fractions of its faces and L the length of the circle in it (exact geometry,
    `_disk_geometry`), V du/dt = a [sum_faces g (u_nb - u) - L (alpha u + beta)] + V (rest of the
    equation). The matrix is symmetric, so the implicit solve is a fixed number of Jacobi-preconditioned
    conjugate-gradient iterations, the count found once before the loop (host reads) as 1.3 x the count
    a random right-hand side needs to reach ``cg_tol``. Second order in space (measured in the tests
    and the benchmark). The explicit flux differences use the grid's central differences on the field
    extended (neighbour averages) to the nodes whose cell misses the disk; those nodes output 0.
    A mixed batch is split into its Dirichlet and Robin samples (each solved as a batch of its own).

    Parameters
    ----------
    u0 : [B, n, n]
        Initial fields on `node_grid`. Dirichlet: nodes outside the disk (`Disk.mask` 0) are set to the
        boundary value. Robin: nodes whose cell meets the disk (also just outside the circle) are used.
    disk : Disk
        Radius (<= 0.5, so the grid's border is outside) and condition per sample; ``value`` and
        ``beta`` [B] or [B, n, n] fields on the node grid (Dirichlet: the field at each held node;
        Robin: L beta(node) as the flux of each cut cell; orders in `Disk`).
    cg_tol : float
        Dirichlet: relative residual the fixed conjugate-gradient iteration count guarantees (from the
        bound 2 ((sqrt(k) - 1) / (sqrt(k) + 1))^m with k the condition number bound of the implicit
        matrix). Robin: the relative residual of the probe that sets the count.
    a, c0, c1, c2, source, num_t, dt, t_end, device, dtype
        As in `spectral2d.solve_dcr`; the reaction coefficient c01 must satisfy 1 + dt c01 > 0.

    Returns
    -------
    u : [B, num_t, n, n] (outside nodes hold the boundary value (Dirichlet) or 0 (Robin)) and ok : [B].
    """
    if (disk.radius > 0.5).any():
        raise ValueError("disk radius must be <= 0.5")
    if disk.gamma is not None and bool((disk.gamma != 0).any()):
        raise ValueError("u_t (Mur) terms in the boundary conditions are only supported by solve_wave_disk")
    if 1.0 + dt * float(c0[:, 0].min()) <= 0:  # both solvers' implicit matrices need it
        raise ValueError("c01 too negative for this dt: the implicit matrix is not positive definite")
    dirichlet = disk.conditions("cpu", dtype)[0]
    kw = {"num_t": num_t, "dt": dt, "t_end": t_end, "cg_tol": cg_tol, "device": device, "dtype": dtype}

    def part(solver, idx: Tensor) -> tuple[Tensor, Tensor]:
        s = source[idx] if source is not None else None
        return solver(u0[idx], disk.select(idx), a[idx], c0[idx], c1[idx], c2[idx], s, **kw)

    return _split_by_condition(dirichlet, part, _solve_dcr_disk_dirichlet, _solve_dcr_disk_robin)


def _split_by_condition(dirichlet: Tensor, part, solve_d, solve_r) -> tuple[Tensor, Tensor]:
    """Run ``part(solve_d, idx)`` on the Dirichlet samples and ``part(solve_r, idx)`` on the others."""
    if bool(dirichlet.all()):
        return part(solve_d, torch.arange(dirichlet.shape[0]))
    if not bool(dirichlet.any()):
        return part(solve_r, torch.arange(dirichlet.shape[0]))
    idx_d, idx_r = dirichlet.nonzero()[:, 0], (~dirichlet).nonzero()[:, 0]
    ud, okd = part(solve_d, idx_d)
    ur, okr = part(solve_r, idx_r)
    u = torch.empty(dirichlet.shape[0], *ud.shape[1:], device=ud.device, dtype=ud.dtype)
    ok = torch.empty(dirichlet.shape[0], device=ud.device, dtype=torch.bool)
    u[idx_d.to(ud.device)], u[idx_r.to(ud.device)] = ud, ur
    ok[idx_d.to(ud.device)], ok[idx_r.to(ud.device)] = okd, okr
    return u, ok


def _fv_operator(gx: Tensor, gy: Tensor, diag: Tensor) -> Callable[[Tensor], Tensor]:
    """v -> sum over the faces of g (v_nb - v), minus diag v: h^2 x the cut-cell Laplacian (x cell area)."""

    def apply(v: Tensor) -> Tensor:
        px = torch.nn.functional.pad(v, (0, 0, 1, 1))
        py = torch.nn.functional.pad(v, (1, 1))
        fx = gx * (px[:, 1:] - px[:, :-1])
        fy = gy * (py[:, :, 1:] - py[:, :, :-1])
        return fx[:, 1:] - fx[:, :-1] + fy[:, :, 1:] - fy[:, :, :-1] - diag * v

    return apply


def _face_average(v: Tensor, gx: Tensor, gy: Tensor, face_sum: Tensor) -> Tensor:
    """Mean of the 4-neighbour values weighted by the open face fractions g (0 where none is open)."""
    px = torch.nn.functional.pad(v, (0, 0, 1, 1))
    py = torch.nn.functional.pad(v, (1, 1))
    total = (
        gx[:, 1:] * px[:, 2:]
        + gx[:, :-1] * px[:, :-2]
        + gy[:, :, 1:] * py[:, :, 2:]
        + gy[:, :, :-1] * py[:, :, :-2]
    )
    return total / face_sum.clamp_min(torch.finfo(v.dtype).tiny)


def _extend(u: Tensor, active: Tensor, passes: int = 2) -> Tensor:
    """Fill the inactive nodes next to active ones with the mean of their active 4-neighbours."""
    w = active
    for _ in range(passes):
        pu = torch.nn.functional.pad((u * w)[:, None], (1, 1, 1, 1))[:, 0]
        pw = torch.nn.functional.pad(w[:, None], (1, 1, 1, 1))[:, 0]
        su = pu[:, 2:, 1:-1] + pu[:, :-2, 1:-1] + pu[:, 1:-1, 2:] + pu[:, 1:-1, :-2]
        sw = pw[:, 2:, 1:-1] + pw[:, :-2, 1:-1] + pw[:, 1:-1, 2:] + pw[:, 1:-1, :-2]
        fill = (sw > 0) & (w == 0)
        u = torch.where(fill, su / sw.clamp_min(1.0), u)
        w = torch.where(fill, torch.ones_like(w), w)
    return u


def _pcg(op: Callable[[Tensor], Tensor], diag: Tensor, b: Tensor, x: Tensor, iters: int) -> Tensor:
    """``iters`` Jacobi-preconditioned conjugate-gradient iterations per sample (no host reads)."""
    tiny = torch.finfo(b.dtype).tiny
    r = b - op(x)
    z = r / diag
    p = z
    rz = (r * z).sum(dim=(-2, -1), keepdim=True)
    for _ in range(iters):
        kp = op(p)
        alpha = rz / (p * kp).sum(dim=(-2, -1), keepdim=True).clamp_min(tiny)
        x = x + alpha * p
        r = r - alpha * kp
        z = r / diag
        rz_new = (r * z).sum(dim=(-2, -1), keepdim=True)
        p = z + (rz_new / rz.clamp_min(tiny)) * p
        rz = rz_new
    return x


def _pcg_count(op: Callable[[Tensor], Tensor], diag: Tensor, tol: float, cap: int = 2000) -> int:
    """Iterations preconditioned CG needs on a random right-hand side to reach ``tol`` in every sample.

    Raises ValueError when that takes more than ``cap`` iterations or the diagonal is not positive
    (the matrix is then not positive definite, e.g. for a strongly negative Robin alpha).
    """
    if not bool((diag > 0).all()):
        raise ValueError("the implicit cut-cell matrix is not positive definite (Robin alpha too negative?)")
    gen = torch.Generator(device=diag.device).manual_seed(0)
    b = torch.randn(diag.shape, generator=gen, device=diag.device, dtype=diag.dtype)
    x = torch.zeros_like(b)
    r = b.clone()
    z = r / diag
    p = z
    rz = (r * z).sum(dim=(-2, -1), keepdim=True)
    b_norm = b.flatten(1).norm(dim=1)
    for k in range(1, cap + 1):
        kp = op(p)
        alpha = rz / (p * kp).sum(dim=(-2, -1), keepdim=True)
        x = x + alpha * p
        r = r - alpha * kp
        if (r.flatten(1).norm(dim=1) <= tol * b_norm).all():
            return k
        z = r / diag
        rz_new = (r * z).sum(dim=(-2, -1), keepdim=True)
        p = z + (rz_new / rz) * p
        rz = rz_new
    raise ValueError(
        f"preconditioned CG did not reach {tol} in {cap} iterations: is the matrix not definite?"
    )


def _solve_dcr_disk_robin(
    u0: Tensor,
    disk: Disk,
    a: Tensor,
    c0: Tensor,
    c1: Tensor,
    c2: Tensor,
    source: Tensor | None = None,
    num_t: int = 101,
    dt: float = 1e-3,
    t_end: float = 1.0,
    cg_tol: float = 1e-10,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """`solve_dcr_disk` for Robin samples: symmetric cut-cell finite volumes, preconditioned CG."""
    dev, u0, a, c0, c1, c2, source = _prepare(u0, a, c0, c1, c2, source, device, dtype)
    n = u0.shape[-1]
    h = 1.0 / (n - 1)
    _, _, alpha, beta, _ = disk.conditions(dev, dtype)
    vol, gx, gy, length = _disk_geometry(disk.radius.to(dev, dtype), n)
    # V du/dt = a [sum g (u_nb - u) - L (alpha u + beta)] + V N, divided by h^2 (V in units of h^2)
    vol = vol / h**2
    active = (vol > 0).to(dtype)
    aa, c = a[:, None, None] / h**2, c0[:, 0, None, None]
    kop = _fv_operator(gx, gy, alpha[:, None, None] * length)
    # boundary flux of a cut cell: L beta(node) (`Disk`: O(h^2) per cell, second order overall)
    lift = aa * (-_as_grid(beta, n) * length) / torch.where(vol > 0, vol, 1.0) * active
    explicit_grid = _explicit_terms(c0, c1, c2, source, h, lift)
    outside = 1 - active
    face_sum = gx[:, 1:] + gx[:, :-1] + gy[:, :, 1:] + gy[:, :, :-1]

    def explicit(u: Tensor) -> Tensor:
        return active * explicit_grid(_extend(u, active))

    def system(cf: float, scale: float) -> tuple[Callable[[Tensor], Tensor], Tensor]:
        def op(v: Tensor) -> Tensor:  # active (cf vol - scale (a K - c vol)) + identity on outside nodes
            return active * (cf * vol * v - scale * (aa * kop(v) - c * vol * v)) + outside * cf * v

        diag = active * (cf * vol + scale * (aa * (face_sum + alpha[:, None, None] * length) + c * vol))
        return op, diag + outside * cf

    systems = {cf: system(cf, scale) for cf, scale in ((1.0, dt), (3.0, 2 * dt))}
    iters = {cf: math.ceil(1.3 * _pcg_count(op, diag, cg_tol)) + 2 for cf, (op, diag) in systems.items()}

    def solve(rhs: Tensor, cf: float, scale: float) -> Tensor:
        op, diag = systems[cf]
        return _pcg(op, diag, active * vol * rhs, active * rhs, iters[cf])

    def impose(u: Tensor) -> Tensor:
        return active * u

    return _imex(u0, explicit, solve, impose, num_t, dt, t_end)


def _solve_dcr_disk_dirichlet(
    u0: Tensor,
    disk: Disk,
    a: Tensor,
    c0: Tensor,
    c1: Tensor,
    c2: Tensor,
    source: Tensor | None = None,
    num_t: int = 101,
    dt: float = 1e-3,
    t_end: float = 1.0,
    cg_tol: float = 1e-10,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """`solve_dcr_disk` for Dirichlet samples: staircase boundary, masked 5-point operator, CG."""
    dev, u0, a, c0, c1, c2, source = _prepare(u0, a, c0, c1, c2, source, device, dtype)
    n = u0.shape[-1]
    h = 1.0 / (n - 1)
    m = disk.mask(n, dev, dtype)
    g = _as_grid(disk.value.to(dev, dtype), n)  # held at the nodes with m == 0
    aa, c = a[:, None, None], c0[:, 0, None, None]
    lift = m * aa * _laplacian_zero_outside((1 - m) * g, h)  # a Δ_h of the held boundary values
    explicit = _explicit_terms(c0, c1, c2, source, h, lift)

    # one host read before the loop: the CG iteration count from the largest condition number bound
    # (eigenvalues of coef - scale (a Δ_h - c) lie in [coef + scale c, coef + scale (8 a / h^2 + c)])
    c_lo, c_hi = c0[:, 0].min().item(), c0[:, 0].max().item()  # 1 + dt c_lo > 0: `solve_dcr_disk`
    a_hi = a.max().item()

    def cg_iters(coef: float, scale: float) -> int:
        sk = math.sqrt((coef + scale * (8 * a_hi / h**2 + c_hi)) / (coef + scale * c_lo))
        return max(1, math.ceil(math.log(2 / cg_tol) / math.log((sk + 1) / max(sk - 1, 1e-300))))

    iters = {1.0: cg_iters(1.0, dt), 3.0: cg_iters(3.0, 2 * dt)}

    def solve(rhs: Tensor, cf: float, scale: float) -> Tensor:
        def op(v: Tensor) -> Tensor:  # m (coef - scale (a Δ_h - c)) m + (1 - m): SPD on the whole array
            inner = cf * v - scale * (aa * _laplacian_zero_outside(m * v, h) - c * v)
            return m * inner + (1 - m) * cf * v

        b = m * rhs
        # plain CG (a unit preconditioner divides by 1.0: the same arithmetic), from the diffusion-free
        # solution b / cf
        return _pcg(op, torch.ones_like(b), b, b / cf, iters[cf])

    def impose(u: Tensor) -> Tensor:
        return m * u + (1 - m) * g

    return _imex(u0, explicit, solve, impose, num_t, dt, t_end)


# ---- wave on the square --------------------------------------------------------------------------
def _ghost_laplacian(u: Tensor, bc: SquareBC, beta: Tensor, h: float) -> Tensor:
    """5-point Laplacian with Robin ghost nodes u_ghost = u_inner - 2 h (alpha u + beta) on every edge.

    ``beta`` [B, 4, n]: the data at each node along each edge (`SquareBC.beta_nodes`).

    The u_t part of a Mur condition is left out (the caller treats it implicitly); rows on Dirichlet
    edges are computed but meaningless, since those nodes are imposed.
    """
    out = torch.zeros_like(u)
    for e, dim in enumerate((-2, -2, -1, -1)):
        if e % 2:  # each axis once, from its low edge
            continue
        v = u.movedim(dim, -1)
        d2 = torch.empty_like(v)
        d2[..., 1:-1] = v[..., 2:] - 2 * v[..., 1:-1] + v[..., :-2]
        for end, (node, inner) in enumerate(((0, 1), (-1, -2))):
            al, be = bc.alpha[:, e + end, None], beta[:, e + end]
            d2[..., node] = 2 * v[..., inner] - (2 + 2 * h * al) * v[..., node] - 2 * h * be
        out = out + d2.movedim(-1, dim) / h**2
    return out


def solve_wave_square(
    u0: Tensor,
    v0: Tensor,
    bc: SquareBC,
    c2: Tensor,
    damping: Tensor | None = None,
    source: Tensor | None = None,
    num_t: int = 101,
    dt: float = 1e-3,
    t_end: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Solve u_tt + mu u_t - c2 Δu + s(x, y) = 0 on the unit square, Dirichlet/Robin/Mur per edge.

    Explicit leapfrog (second order), ghost nodes on Robin/Mur edges; the u_t of a Mur condition and
    the damping are centred, (u^{n+1} - u^{n-1}) / (2 dt), which keeps the update explicit (a per-node
    division). The first step uses u^{-1} from a second-order Taylor expansion with v0. Stable for
    sqrt(c2) dt / h <= 1 / sqrt(2) (checked once, a host read of max c2).

    Parameters
    ----------
    u0, v0 : [B, n, n]
        Initial displacement and velocity on `node_grid`.
    bc : SquareBC
        Conditions per edge; ``gamma`` non-zero gives Mur edges (gamma = 1 / sqrt(c2) absorbs waves
        arriving along the normal). ``beta`` [B, 4] or [B, 4, n] (per node along the edge).
    c2, damping, source, num_t, t_end, device, dtype
        As in `spectral2d.solve_wave`.
    dt : float
        Leapfrog step; it must divide the save interval.

    Returns
    -------
    u : [B, num_t, n, n] and ok : [B] bool.
    """
    dev = torch.device(device) if device is not None else u0.device
    u0, v0, c2 = u0.to(dev, dtype), v0.to(dev, dtype), c2.to(dev, dtype)
    bsz, n, _ = u0.shape
    h = 1.0 / (n - 1)
    if math.sqrt(c2.max().item()) * dt / h > 1 / math.sqrt(2):
        raise ValueError(f"dt={dt} exceeds the leapfrog limit h / (sqrt(2 max c2)) at n={n}")
    steps = _steps_per_save(dt, num_t, t_end)
    bc = bc.to(dev, dtype)
    beta = bc.beta_nodes(n)
    gamma = bc.gamma if bc.gamma is not None else torch.zeros_like(bc.alpha)
    mu = (damping.to(dev, dtype) if damping is not None else torch.zeros_like(c2))[:, None, None]
    s = source.to(dev, dtype) if source is not None else torch.zeros_like(u0)
    cc = c2[:, None, None]
    # edge masks; G = sum over the Mur edges through a node of 2 gamma / h (ghost terms add -c2 G u_t)
    g = torch.zeros_like(u0)
    masks, vals = [], []
    for e, (dim, idx) in enumerate(((-2, 0), (-2, n - 1), (-1, 0), (-1, n - 1))):
        edge = torch.zeros(n, n, device=dev, dtype=torch.bool)
        if dim == -2:
            edge[idx, :] = True
        else:
            edge[:, idx] = True
        g = g + edge * (2 * gamma[:, e, None, None] / h)
        masks.append(edge & bc.dirichlet[:, e, None, None])
        vals.append(-(beta[:, e, None, :] if dim == -2 else beta[:, e, :, None]))
    k = (mu + cc * g) * (dt / 2)

    def impose(u: Tensor) -> Tensor:
        for m, v in zip(masks, vals, strict=True):
            u = torch.where(m, v, u)
        return u

    u = impose(u0)
    acc0 = cc * (_ghost_laplacian(u, bc, beta, h) - g * v0) - mu * v0 - s
    u_prev = impose(u - dt * v0 + 0.5 * dt**2 * acc0)
    out = torch.empty(bsz, num_t, n, n, device=dev, dtype=dtype)
    out[:, 0] = u
    ok = _check_frame(u, torch.ones(bsz, dtype=torch.bool, device=dev))
    step = 0
    for frame in range(1, num_t):
        while step < frame * steps:
            rhs = 2 * u - (1 - k) * u_prev + dt**2 * (cc * _ghost_laplacian(u, bc, beta, h) - s)
            u_prev, u = u, impose(rhs / (1 + k))
            step += 1
        ok = _check_frame(u, ok)
        keep = ok[:, None, None]
        u, u_prev = (torch.where(keep, v, torch.zeros_like(v)) for v in (u, u_prev))
        out[:, frame] = torch.where(keep, u, out[:, frame - 1])
    return out, ok


# ---- wave on the disk ----------------------------------------------------------------------------
def solve_wave_disk(
    u0: Tensor,
    v0: Tensor,
    disk: Disk,
    c2: Tensor,
    damping: Tensor | None = None,
    source: Tensor | None = None,
    num_t: int = 101,
    dt: float = 1e-3,
    t_end: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Solve u_tt + mu u_t - c2 Δu + s(x, y) = 0 on disks, Dirichlet or Robin/Mur on the circle.

    Explicit leapfrog as in `solve_wave_square`; the u_t of the Mur condition
    gamma u_t + ∂_n u + alpha u + beta = 0 (``Disk.gamma``; gamma = 1 / sqrt(c2) absorbs waves arriving
    along the normal) and the damping are centred, which keeps the update a per-node division.
    Dirichlet samples: staircase boundary as in `solve_dcr_disk` (first order). Robin/Mur samples: the
    cut-cell finite volumes of `solve_dcr_disk`. Small cut cells would make leapfrog unstable, so
    each cell's mass V is raised to V' = max(V, h^2 x (sum of its face fractions) / 4) (no cut cell is
    then stiffer than a full one) and the added mass V' - V is given the face-weighted mean acceleration
    of the neighbours, V' a = F + (V' - V) mean(a_nb), which keeps the error per cut cell O(h^3): second
    order in space (the clamp alone measured about first order). The spectral radius of the resulting
    operator measured <= 8 / h^2, so the square's limit sqrt(c2) dt / h <= 1 / sqrt(2) applies (checked
    once, a host read). Nodes whose cell misses the disk output 0.

    Parameters
    ----------
    u0, v0 : [B, n, n]
        Initial displacement and velocity on `node_grid`.
    disk : Disk
        Radius (<= 0.5) and condition per sample; `Disk.from_mur` gives the reference's Mur form.
        ``value`` and ``beta`` [B] or [B, n, n], used as in `solve_dcr_disk`.
    c2, damping, source, num_t, t_end, device, dtype
        As in `spectral2d.solve_wave`.
    dt : float
        Leapfrog step; it must divide the save interval.

    Returns
    -------
    u : [B, num_t, n, n] and ok : [B] bool.
    """
    if (disk.radius > 0.5).any():
        raise ValueError("disk radius must be <= 0.5")
    n = u0.shape[-1]
    if math.sqrt(c2.max().item()) * dt * (n - 1) > 1 / math.sqrt(2):
        raise ValueError(f"dt={dt} exceeds the leapfrog limit h / (sqrt(2 max c2)) at n={n}")
    dirichlet = disk.conditions("cpu", dtype)[0]
    kw = {"num_t": num_t, "dt": dt, "t_end": t_end, "device": device, "dtype": dtype}

    def part(robin: bool, idx: Tensor) -> tuple[Tensor, Tensor]:
        mu = damping[idx] if damping is not None else None
        s = source[idx] if source is not None else None
        return _solve_wave_disk_part(u0[idx], v0[idx], disk.select(idx), c2[idx], mu, s, robin, **kw)

    return _split_by_condition(dirichlet, part, False, True)


def _solve_wave_disk_part(
    u0: Tensor,
    v0: Tensor,
    disk: Disk,
    c2: Tensor,
    damping: Tensor | None,
    source: Tensor | None,
    robin: bool,
    num_t: int,
    dt: float,
    t_end: float,
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """`solve_wave_disk` on samples that all have Dirichlet (``robin`` False) or Robin/Mur conditions."""
    dev = torch.device(device) if device is not None else u0.device
    u0, v0, c2 = u0.to(dev, dtype), v0.to(dev, dtype), c2.to(dev, dtype)
    bsz, n, _ = u0.shape
    h = 1.0 / (n - 1)
    steps = _steps_per_save(dt, num_t, t_end)
    _, value, alpha, beta, gamma = disk.conditions(dev, dtype)
    mu = (damping.to(dev, dtype) if damping is not None else torch.zeros_like(c2))[:, None, None]
    s = source.to(dev, dtype) if source is not None else torch.zeros_like(u0)
    cc = c2[:, None, None]
    if robin:
        vol, gx, gy, length = _disk_geometry(disk.radius.to(dev, dtype), n)
        face_sum = gx[:, 1:] + gx[:, :-1] + gy[:, :, 1:] + gy[:, :, :-1]
        active = (vol > 0).to(dtype)
        mass = torch.where(vol > 0, torch.maximum(vol / h**2, face_sum / 4), 1.0)  # in units of h^2
        kop = _fv_operator(gx, gy, alpha[:, None, None] * length)
        const = -_as_grid(beta, n) * length
        k = (mu + cc * gamma[:, None, None] * length / (h**2 * mass)) * (dt / 2) * active

        extra = active * (1 - vol / (h**2 * mass))  # the clamped share of the mass

        def lap(u: Tensor) -> Tensor:  # c2 Δ_h u with the boundary data, 0 on inactive nodes
            acc = active * cc * (kop(u) + const) / (h**2 * mass)
            return acc + extra * _face_average(acc, gx, gy, face_sum)

        def impose(u: Tensor) -> Tensor:
            return active * u

    else:
        m = disk.mask(n, dev, dtype)
        g = _as_grid(value, n)
        k = mu * (dt / 2) * m

        def lap(u: Tensor) -> Tensor:
            return m * cc * _laplacian_zero_outside(m * u + (1 - m) * g, h)

        def impose(u: Tensor) -> Tensor:
            return m * u + (1 - m) * g

    u = impose(u0)
    acc0 = lap(u) - (2 * k / dt) * v0 - s
    u_prev = impose(u - dt * v0 + 0.5 * dt**2 * acc0)
    out = torch.empty(bsz, num_t, n, n, device=dev, dtype=dtype)
    out[:, 0] = u
    ok = _check_frame(u, torch.ones(bsz, dtype=torch.bool, device=dev))
    step = 0
    for frame in range(1, num_t):
        while step < frame * steps:
            rhs = 2 * u - (1 - k) * u_prev + dt**2 * (lap(u) - s)
            u_prev, u = u, impose(rhs / (1 + k))
            step += 1
        ok = _check_frame(u, ok)
        keep = ok[:, None, None]
        u, u_prev = (torch.where(keep, v, torch.zeros_like(v)) for v in (u, u_prev))
        out[:, frame] = torch.where(keep, u, out[:, frame - 1])
    return out, ok
