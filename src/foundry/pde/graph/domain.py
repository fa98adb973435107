"""Spatial domains of a PDE: axes, periodicity and named boundary pieces given by signed distances.

PDEformer-1 knows one domain, the interval [-1, 1] (periodic, or with a condition at each end).
PDEformer-2 (arXiv 2507.15409; reference §8) adds squares with non-periodic axes, disks and any
domain given by a signed distance function (SDF): the domain Ω enters the graph as an ``sdf``
function node and each boundary piece Γ_i as another, whose zero set is Γ_i (the official
``docs/images/DAG-BC-*.png``). Conventions here: an SDF is negative inside and zero on the
boundary, so the gradient of Ω's SDF is the outward normal on its boundary and a normal derivative
is ``sum_k (d_k u)(d_k sdf_Ω)``, the reference's construction. A square with a non-periodic axis
has the box SDF of that axis as Ω's SDF; a fully periodic square has none.

A `Domain` is immutable. Its `grid` is where functions (initial conditions, coefficient fields,
SDFs) are sampled for the function encoder: periodic axes use the periodic points i / n of the
solvers (`foundry.pde.data.spectral2d.grid`), non-periodic ones the nodes i / (n - 1)
(`foundry.pde.data.fd2d.node_grid`), so data on the solver grid can be subsampled onto it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

AXES: tuple[str, ...] = ("x", "y", "z")
# Edge names of a square, in the edge order of `foundry.pde.data.fd2d` (x=0, x=1, y=0, y=1).
SQUARE_EDGES: tuple[str, ...] = ("left", "right", "bottom", "top")

SDF = Callable[[np.ndarray], np.ndarray]  # points [n, d] -> signed distance [n]


@dataclass(frozen=True)
class Boundary:
    """A named piece Γ of a domain's boundary, as the SDF whose zero set contains it."""

    name: str
    sdf: SDF


@dataclass(frozen=True)
class Domain:
    """A spatial domain: a box (``lower``..``upper`` per axis) cut down by an optional SDF.

    Attributes
    ----------
    lower, upper : per-axis bounds of the bounding box
    periodic : per axis, whether the solution is periodic along it (box domains only)
    sdf : the domain's SDF, or None when the domain is the whole box (then no ``sdf`` node)
    boundaries : the named pieces a boundary condition can be put on
    kind : 'interval', 'square', 'disk' or 'sdf' (for messages and the reference solvers)
    params : the numbers that define the domain (e.g. centre and radius of a disk)
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    periodic: tuple[bool, ...]
    sdf: SDF | None
    boundaries: tuple[Boundary, ...]
    kind: str
    params: tuple[float, ...] = ()

    @property
    def dim(self) -> int:
        return len(self.lower)

    @property
    def axes(self) -> tuple[str, ...]:
        return AXES[: self.dim]

    @property
    def boundary_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.boundaries)

    def boundary(self, name: str) -> Boundary:
        """The boundary piece called ``name``; ValueError listing the names if there is none."""
        for b in self.boundaries:
            if b.name == name:
                return b
        have = ", ".join(self.boundary_names) or "none: the domain is periodic"
        raise ValueError(f"the {self.kind} domain has no boundary {name!r} (its boundaries: {have})")

    def grid(self, n: int) -> np.ndarray:
        """Points [n**dim, dim] of the sampling grid, row-major (the last axis varies fastest)."""
        if n < 2:
            raise ValueError(f"grid size must be >= 2, got {n}")
        axes = []
        for lo, hi, per in zip(self.lower, self.upper, self.periodic, strict=True):
            axes.append(np.linspace(lo, hi, n, endpoint=not per))
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=-1)

    # -- constructors ------------------------------------------------------------------------------
    @classmethod
    def interval(cls, periodic: bool = True) -> Domain:
        """PDEformer-1's [-1, 1]; non-periodic: boundaries 'left' (x = -1) and 'right' (x = 1)."""
        bounds = (
            ()
            if periodic
            else (Boundary("left", lambda p: -1.0 - p[:, 0]), Boundary("right", lambda p: p[:, 0] - 1.0))
        )
        return cls((-1.0,), (1.0,), (periodic,), None, bounds, "interval")

    @classmethod
    def square(cls, periodic: tuple[bool, bool] | bool = True) -> Domain:
        """The unit square [0, 1]^2; each non-periodic axis has two edges (left/right, bottom/top)."""
        per = (periodic, periodic) if isinstance(periodic, bool) else tuple(periodic)
        edges = {
            "left": lambda p: -p[:, 0],
            "right": lambda p: p[:, 0] - 1.0,
            "bottom": lambda p: -p[:, 1],
            "top": lambda p: p[:, 1] - 1.0,
        }
        names = [e for e, axis in zip(SQUARE_EDGES, (0, 0, 1, 1), strict=True) if not per[axis]]
        walls = [axis for axis in (0, 1) if not per[axis]]

        def box_sdf(p: np.ndarray) -> np.ndarray:  # distance to the walls of the non-periodic axes
            return np.max([np.abs(p[:, a] - 0.5) - 0.5 for a in walls], axis=0)

        bounds = tuple(Boundary(e, edges[e]) for e in names)
        return cls((0.0, 0.0), (1.0, 1.0), per, box_sdf if walls else None, bounds, "square")

    @classmethod
    def disk(cls, radius: float = 0.4, center: tuple[float, float] = (0.5, 0.5)) -> Domain:
        """A disk inside the unit square; its boundary piece is called 'circle'."""
        cx, cy = (float(c) for c in center)
        radius = float(radius)
        if not (
            radius > 0 and cx - radius >= 0 and cx + radius <= 1 and cy - radius >= 0 and cy + radius <= 1
        ):
            raise ValueError(
                f"the disk (center ({cx:g}, {cy:g}), radius {radius:g}) must lie inside the unit square"
            )

        def sdf(p: np.ndarray) -> np.ndarray:
            return np.hypot(p[:, 0] - cx, p[:, 1] - cy) - radius

        return cls(
            (0.0, 0.0), (1.0, 1.0), (False, False), sdf, (Boundary("circle", sdf),), "disk", (cx, cy, radius)
        )

    @classmethod
    def from_sdf(cls, sdf: SDF, name: str = "boundary") -> Domain:
        """A domain in the unit square given by a user's SDF (negative inside); one boundary piece."""
        return cls((0.0, 0.0), (1.0, 1.0), (False, False), sdf, (Boundary(name, sdf),), "sdf")
