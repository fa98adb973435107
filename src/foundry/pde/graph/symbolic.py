"""Symbolic PDEs written the way one writes them on paper.

A `PDE` collects unknowns, initial conditions, equations ("expression = 0") and boundary
conditions; `Expr` objects overload ``+ - * / **`` so that
``pde.eq(pde.dt(u) + pde.dx(0.5 * u**2 - kappa * pde.dx(u)))`` reads like the paper.
The expression tree is what `foundry.pde.graph.dag.build_graph` turns into the computational graph
of PDEformer-1 (arXiv 2407.06664, §2.1), so the simplification rules below are the ones that paper's
graph construction uses: numbers become ``coef`` nodes, ``a - b`` is ``add(a, neg(b))`` (a negated
product with a number folds the sign into the number, a negated sum is the sum of negations),
``u*u`` and ``u**2`` are ``square(u)``, ``u**3`` is ``mul(u, square(u))`` and sums/products are
flattened n-ary nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

OPERATOR_KINDS = ("add", "mul", "neg", "square", "exp", "sin", "cos", "dt", "dx")
LEAF_KINDS = ("uf", "coef", "cf")
BC_KINDS = ("dirichlet", "neumann", "robin", "mur")


@dataclass(frozen=True)
class Function1D:
    """A function of x known by its values on points, the input of the function encoder.

    Parameters
    ----------
    x : np.ndarray, shape (n_pts,)
        Sample locations in [-1, 1].
    values : np.ndarray, shape (n_pts,)
        Function values at ``x``.
    """

    x: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.x.shape != self.values.shape or self.x.ndim != 1:
            raise ValueError(f"function x {self.x.shape} and values {self.values.shape} must be equal 1-D")
        if not np.all(np.isfinite(self.values)):
            raise ValueError("function values must be finite")


class Expr:
    """A node of a symbolic PDE expression tree.

    Parameters
    ----------
    kind : str
        ``uf`` (unknown), ``coef`` (scalar), ``cf`` (coefficient field s(x)) or an operator in
        `OPERATOR_KINDS`.
    args : tuple of Expr
        Operands (empty for leaves).
    value : float or Function1D or str, optional
        The number of a ``coef``, the function of a ``cf``, the name of a ``uf``.
    """

    __slots__ = ("kind", "args", "value")
    __array_priority__ = 1000  # numpy scalars on the left defer to Expr's reflected operators

    def __init__(self, kind: str, args: tuple[Expr, ...] = (), value: object = None) -> None:
        if kind not in OPERATOR_KINDS + LEAF_KINDS:
            raise ValueError(f"unknown expression kind {kind!r}")
        self.kind = kind
        self.args = args
        self.value = value

    # -- arithmetic -------------------------------------------------------------------------
    def __add__(self, other: object) -> Expr:
        return add(self, as_expr(other))

    def __radd__(self, other: object) -> Expr:
        return add(as_expr(other), self)

    def __sub__(self, other: object) -> Expr:
        return add(self, neg(as_expr(other)))

    def __rsub__(self, other: object) -> Expr:
        return add(as_expr(other), neg(self))

    def __neg__(self) -> Expr:
        return neg(self)

    def __mul__(self, other: object) -> Expr:
        return mul(self, as_expr(other))

    def __rmul__(self, other: object) -> Expr:
        return mul(as_expr(other), self)

    def __truediv__(self, other: object) -> Expr:
        if not isinstance(other, int | float | np.floating | np.integer) or other == 0:
            raise ValueError("an expression can only be divided by a non-zero number")
        return mul(self, coef(1.0 / float(other)))

    def __pow__(self, power: object) -> Expr:
        if power == 1:
            return self
        if power == 2:
            return Expr("square", (self,))
        if power == 3:
            return Expr("mul", (self, Expr("square", (self,))))
        raise ValueError(f"only powers 1, 2 and 3 of an expression are supported, got {power!r}")

    def __repr__(self) -> str:
        if self.kind == "coef":
            return f"{self.value:g}"
        if self.kind == "uf":
            return str(self.value)
        if self.kind == "cf":
            return "s(x)"
        return f"{self.kind}({', '.join(map(repr, self.args))})"


def coef(value: float) -> Expr:
    """A scalar coefficient node."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"coefficient must be finite, got {value}")
    return Expr("coef", value=value)


def as_expr(obj: object) -> Expr:
    """Numbers become ``coef`` nodes; expressions pass through."""
    if isinstance(obj, Expr):
        return obj
    if isinstance(obj, int | float | np.floating | np.integer):
        return coef(float(obj))
    raise TypeError(f"cannot use {type(obj).__name__} in a PDE expression")


def add(*terms: Expr) -> Expr:
    """n-ary sum, flattened."""
    flat: list[Expr] = []
    for t in terms:
        flat.extend(t.args if t.kind == "add" else (t,))
    return Expr("add", tuple(flat))


def mul(*factors: Expr) -> Expr:
    """n-ary product, flattened; numbers are merged into one leading ``coef``; ``x*x`` is ``square``."""
    flat: list[Expr] = []
    for f in factors:
        flat.extend(f.args if f.kind == "mul" else (f,))
    numbers = [f.value for f in flat if f.kind == "coef"]
    rest = [f for f in flat if f.kind != "coef"]
    if len(rest) == 2 and rest[0] is rest[1]:
        rest = [Expr("square", (rest[0],))]
    if not rest:
        return coef(float(np.prod(numbers)))
    if not numbers and len(rest) == 1:
        return rest[0]
    lead = [coef(float(np.prod(numbers)))] if numbers else []
    return Expr("mul", tuple(lead + rest))


def neg(e: Expr) -> Expr:
    """Negation; folds into a number (``-(c*X)`` is ``(-c)*X``), distributes over sums, cancels ``--X``."""
    if e.kind == "add":
        return add(*(neg(a) for a in e.args))
    if e.kind == "coef":
        return coef(-e.value)
    if e.kind == "neg":
        return e.args[0]
    if e.kind == "mul" and e.args[0].kind == "coef":
        return Expr("mul", (coef(-e.args[0].value),) + e.args[1:])
    return Expr("neg", (e,))


@dataclass
class BoundaryCondition:
    """``expr = value`` at one end of [-1, 1]; ``expr`` is built from the unknown."""

    unknown: Expr
    side: str
    kind: str
    expr: Expr
    value: float


@dataclass
class PDE:
    """A collector for a (system of) PDE(s) on (t, x) in [0, 1] x [-1, 1].

    Written the way the PDEformer-1 code builds its graphs (§2.1): create unknowns, give each an
    initial condition, add equations "sum of terms = 0" and, for non-periodic problems, one boundary
    condition per unknown and end. With no boundary condition the problem is periodic.

    Parameters
    ----------
    x : np.ndarray, shape (n_pts,), optional
        Points on which callables (initial conditions, coefficient fields) are sampled for the
        function encoder; default 128 uniform periodic points on [-1, 1).

    Examples
    --------
    >>> pde = PDE(); u = pde.unknown()
    >>> pde.ic(u, lambda x: np.sin(np.pi * x))
    >>> pde.eq(pde.dt(u) + pde.dx(0.5 * u**2 - 0.01 * pde.dx(u)))
    """

    x: np.ndarray = field(default_factory=lambda: np.linspace(-1.0, 1.0, 128, endpoint=False))
    unknowns: list[Expr] = field(default_factory=list)
    initial: dict[int, Function1D] = field(default_factory=dict)
    equations: list[Expr] = field(default_factory=list)
    boundary: list[BoundaryCondition] = field(default_factory=list)

    # -- building blocks ----------------------------------------------------------------------
    def unknown(self, name: str = "u") -> Expr:
        """A new unknown field (a ``uf`` node)."""
        u = Expr("uf", value=name)
        self.unknowns.append(u)
        return u

    def coef(self, value: float) -> Expr:
        return coef(value)

    def field(self, values: np.ndarray | Callable[[np.ndarray], np.ndarray]) -> Expr:
        """A coefficient field s(x) (a ``cf`` node) from values on `x` or a callable."""
        return Expr("cf", value=self._function(values, "field"))

    @staticmethod
    def dt(e: Expr) -> Expr:
        return Expr("dt", (as_expr(e),))

    @staticmethod
    def dx(e: Expr) -> Expr:
        return Expr("dx", (as_expr(e),))

    @staticmethod
    def exp(e: Expr) -> Expr:
        return Expr("exp", (as_expr(e),))

    @staticmethod
    def sin(e: Expr) -> Expr:
        return Expr("sin", (as_expr(e),))

    @staticmethod
    def cos(e: Expr) -> Expr:
        return Expr("cos", (as_expr(e),))

    # -- conditions and equations ----------------------------------------------------------------
    def ic(self, u: Expr, g: np.ndarray | Callable[[np.ndarray], np.ndarray]) -> None:
        """Initial condition u(0, x) = g(x)."""
        self.initial[self._index(u)] = self._function(g, "initial condition")

    def eq(self, lhs: Expr) -> None:
        """Add the equation ``lhs = 0``."""
        lhs = as_expr(lhs)
        self.equations.append(lhs if lhs.kind == "add" else Expr("add", (lhs,)))

    def bc(
        self,
        u: Expr,
        side: str,
        kind: str,
        value: float = 0.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        speed: float = 1.0,
    ) -> None:
        """Boundary condition at ``side`` ('left' = x=-1, 'right' = x=1).

        dirichlet: u = value; neumann: u_x = value; robin: alpha*u + beta*u_x = value;
        mur (waves): u_t - speed*u_x = value on the left, u_t + speed*u_x = value on the right.
        """
        self._index(u)
        if side not in ("left", "right"):
            raise ValueError(f"bc side must be 'left' or 'right', got {side!r}")
        if kind not in BC_KINDS:
            raise ValueError(f"bc kind must be one of {BC_KINDS}, got {kind!r}")
        if any(b.unknown is u and b.side == side for b in self.boundary):
            raise ValueError(f"unknown {u.value!r} already has a boundary condition on the {side}")
        if kind == "dirichlet":
            expr = u
        elif kind == "neumann":
            expr = self.dx(u)
        elif kind == "robin":
            expr = alpha * u + beta * self.dx(u)
        else:
            expr = self.dt(u) + (speed if side == "right" else -speed) * self.dx(u)
        self.boundary.append(BoundaryCondition(u, side, kind, expr, float(value)))

    @property
    def periodic(self) -> bool:
        return not self.boundary

    def check(self) -> None:
        """Raise ValueError naming what is missing for a well-posed problem."""
        if not self.unknowns:
            raise ValueError("the PDE has no unknown; call pde.unknown()")
        if len(self.equations) != len(self.unknowns):
            raise ValueError(f"{len(self.unknowns)} unknown(s) but {len(self.equations)} equation(s)")
        for i, u in enumerate(self.unknowns):
            if i not in self.initial:
                raise ValueError(f"unknown {u.value!r} has no initial condition; call pde.ic()")
            sides = {b.side for b in self.boundary if b.unknown is u}
            if self.boundary and sides != {"left", "right"}:
                raise ValueError(f"unknown {u.value!r} needs a boundary condition at both ends")

    # -- helpers -------------------------------------------------------------------------------
    def _index(self, u: Expr) -> int:
        for i, v in enumerate(self.unknowns):
            if v is u:
                return i
        raise ValueError("expected an unknown created by this PDE's unknown()")

    def _function(self, g: object, what: str) -> Function1D:
        if callable(g):
            values = np.broadcast_to(np.asarray(g(self.x), dtype=np.float64), self.x.shape).copy()
        else:
            values = np.asarray(g, dtype=np.float64)
            if values.shape != self.x.shape:
                raise ValueError(f"{what} has {values.shape} values but the PDE has {self.x.shape} points")
        return Function1D(self.x.astype(np.float64), values)
