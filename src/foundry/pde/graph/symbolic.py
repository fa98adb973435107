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

The same API writes PDEformer-2's problems (arXiv 2507.15409, reference §8): unknowns u(t, x, y) on
a `foundry.pde.graph.domain.Domain` (periodic or not, a disk, a user's SDF), derivatives ``dy``,
the normal derivative on a named boundary piece as ``sum_k (d_k u)(d_k sdf)``, and boundary
conditions "expression = 0 on Γ", each an ``eq0`` node that also reads Γ's ``sdf`` node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from foundry.pde.graph.domain import AXES, Domain

# one derivative operator per spatial axis: dx, dy, dz (the node vocabulary is generated the same way)
DERIVATIVE_KINDS = tuple(f"d{a}" for a in AXES)
OPERATOR_KINDS = ("add", "mul", "neg", "square", "exp", "sin", "cos", "dt") + DERIVATIVE_KINDS
LEAF_KINDS = ("uf", "coef", "cf", "sdf")
BC_KINDS = ("dirichlet", "neumann", "robin", "mur")


@dataclass(frozen=True)
class Function:
    """A function of space known by its values on points, the input of the function encoder.

    Parameters
    ----------
    points : np.ndarray, shape (n_pts, d)
        Sample locations (d spatial coordinates).
    values : np.ndarray, shape (n_pts,)
        Function values at ``points``.
    """

    points: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.points.ndim != 2 or self.values.shape != self.points.shape[:1]:
            raise ValueError(
                f"function points {self.points.shape} must be (n, d) and values {self.values.shape} (n,)"
            )
        if not np.all(np.isfinite(self.values)):
            raise ValueError("function values must be finite")

    @classmethod
    def on_line(cls, x: np.ndarray, values: np.ndarray) -> Function:
        """A function of x alone (PDEformer-1): points are ``x[:, None]``."""
        x, values = np.asarray(x), np.asarray(values)
        if x.ndim != 1 or x.shape != values.shape:
            raise ValueError(f"function x {x.shape} and values {values.shape} must be equal 1-D")
        return cls(x[:, None], values)

    @property
    def x(self) -> np.ndarray:
        """The first coordinate of the points (x of a 1-D function)."""
        return self.points[:, 0]


class Expr:
    """A node of a symbolic PDE expression tree.

    Parameters
    ----------
    kind : str
        ``uf`` (unknown), ``coef`` (scalar), ``cf`` (coefficient field s(x)), ``sdf`` (signed
        distance of the domain or of a boundary piece) or an operator in `OPERATOR_KINDS`.
    args : tuple of Expr
        Operands (empty for leaves).
    value : float or Function or str or SDFValue, optional
        The number of a ``coef``, the function of a ``cf``, the name of a ``uf``, the named SDF
        of an ``sdf`` (a domain or a boundary piece).
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
        if self.kind == "sdf":
            return f"sdf[{self.value.name}]"
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


@dataclass(frozen=True)
class SDFValue:
    """The value of an ``sdf`` leaf: a name ('domain' or a boundary piece) and the sampled SDF."""

    name: str
    function: Function


@dataclass
class BoundaryCondition:
    """``expr = value`` on a boundary piece; ``expr`` is built from the unknown.

    In 1-D ``side`` is 'left' or 'right' and ``value`` a number (PDEformer-1's ``bv_l``/``bv_r``
    nodes). In 2-D ``side`` names a piece of the domain's boundary and ``expr`` already holds the
    whole condition "expr = 0" (the value moved to the left), as PDEformer-2 writes it.
    """

    unknown: Expr
    side: str
    kind: str
    expr: Expr
    value: float


@dataclass
class PDE:
    """A collector for a (system of) PDE(s) on (t, x) in [0, 1] x [-1, 1], or (t, x, y) on a 2-D domain.

    Written the way the PDEformer code builds its graphs (§2.1): create unknowns, give each an
    initial condition, add equations "sum of terms = 0" and, for non-periodic problems, boundary
    conditions. An unknown whose time derivative appears nowhere takes no initial condition: every
    unknown of a time-independent (steady) problem, or a constraint variable such as a pressure
    (PDEformer-2's DC-DCR and steady elasticity families; its graph has no ``ic`` node). In 1-D
    (the default domain) one condition per unknown and end; with none the
    problem is periodic. In 2-D the `Domain` says which boundary pieces exist; each unknown needs a
    condition on each of them.

    Parameters
    ----------
    x : np.ndarray, shape (n_pts,), optional
        1-D only: points on which callables (initial conditions, coefficient fields) are sampled for
        the function encoder; default 128 uniform periodic points on [-1, 1).
    domain : Domain, optional
        Default `Domain.interval()` (PDEformer-1). A 2-D domain samples functions on
        ``domain.grid(resolution)``; callables then take the points [n, 2] (columns x, y).
    resolution : int
        Grid points per axis for functions of a 2-D domain (the paper uses 128).

    Examples
    --------
    >>> pde = PDE(); u = pde.unknown()
    >>> pde.ic(u, lambda x: np.sin(np.pi * x))
    >>> pde.eq(pde.dt(u) + pde.dx(0.5 * u**2 - 0.01 * pde.dx(u)))
    >>> pde2 = PDE(domain=Domain.disk(0.4), resolution=32); v = pde2.unknown()
    >>> pde2.ic(v, lambda p: np.cos(np.pi * p[:, 0]))
    >>> pde2.eq(pde2.dt(v) - 0.01 * (pde2.dx(pde2.dx(v)) + pde2.dy(pde2.dy(v))))
    >>> pde2.bc(v, "circle", "robin", alpha=1.0, beta=0.5)
    """

    x: np.ndarray | None = None
    domain: Domain = field(default_factory=Domain.interval)
    resolution: int = 128
    unknowns: list[Expr] = field(default_factory=list)
    initial: dict[int, Function] = field(default_factory=dict)
    equations: list[Expr] = field(default_factory=list)
    boundary: list[BoundaryCondition] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.domain.dim == 1:
            if self.x is None:
                self.x = np.linspace(-1.0, 1.0, 128, endpoint=False)
            self.x = np.asarray(self.x, dtype=np.float64)
            if self.x.ndim != 1:
                raise ValueError(f"x must be 1-D, got shape {self.x.shape}")
            self.points = self.x[:, None]
        else:
            if self.x is not None:
                raise ValueError("x is for 1-D PDEs; a 2-D PDE samples functions on domain.grid(resolution)")
            self.points = self.domain.grid(self.resolution)
        self._sdf: dict[str, Expr] = {}
        self._derived: dict[tuple[str, int], Expr] = {}

    @property
    def dim(self) -> int:
        return self.domain.dim

    # -- building blocks ----------------------------------------------------------------------
    def unknown(self, name: str = "u") -> Expr:
        """A new unknown field (a ``uf`` node)."""
        u = Expr("uf", value=name)
        self.unknowns.append(u)
        return u

    def coef(self, value: float) -> Expr:
        return coef(value)

    def field(self, values: np.ndarray | Callable[[np.ndarray], np.ndarray]) -> Expr:
        """A coefficient field s(x) (a ``cf`` node) from values on the points or a callable."""
        return Expr("cf", value=self._function(values, "field"))

    def sdf(self, name: str = "domain") -> Expr:
        """The ``sdf`` leaf of the domain ('domain') or of a named boundary piece; one per name.

        A boundary piece whose SDF is the domain's own (a disk's circle) shares the domain's leaf,
        so the graph has one ``sdf`` node for both.
        """
        d = self.domain
        fn = d.sdf if name == "domain" else d.boundary(name).sdf
        if fn is None:
            raise ValueError(f"the {d.kind} domain is the whole box: it has no domain SDF")
        key = "domain" if fn is d.sdf else name
        if key not in self._sdf:
            values = np.asarray(fn(self.points), dtype=np.float64)
            self._sdf[key] = Expr("sdf", value=SDFValue(key, Function(self.points, values)))
        return self._sdf[key]

    def derivative(self, kind: str, e: Expr) -> Expr:
        """``kind`` (dt, dx, dy, dz) of ``e``. In 2-D a derivative of an unknown or of an SDF is one
        node however often it is written (u_t in an equation and in a Mur condition, d_k u and
        d_k sdf in every normal derivative), as the reference's builders share them; in 1-D each
        call is a new node, as PDEformer-1's graphs have them."""
        e = as_expr(e)
        if self.dim < 2 or e.kind not in ("uf", "sdf"):
            return Expr(kind, (e,))
        return self._derived.setdefault((kind, id(e)), Expr(kind, (e,)))

    def dt(self, e: Expr) -> Expr:
        return self.derivative("dt", e)

    def dx(self, e: Expr) -> Expr:
        return self.derivative("dx", e)

    def dy(self, e: Expr) -> Expr:
        return self.derivative("dy", e)

    def dz(self, e: Expr) -> Expr:
        return self.derivative("dz", e)

    def grad(self, e: Expr) -> list[Expr]:
        """The spatial derivatives of ``e`` along the domain's axes."""
        return [self.derivative(f"d{a}", e) for a in self.domain.axes]

    def laplacian(self, e: Expr) -> Expr:
        """``sum_k d_k d_k e`` over the domain's axes."""
        return add(*(Expr(f"d{a}", (d,)) for a, d in zip(self.domain.axes, self.grad(e), strict=True)))

    def dn(self, e: Expr, c: float | Expr = 1.0) -> Expr:
        """``c`` times the outward normal derivative: ``sum_k c (d_k e)(d_k sdf_Ω)`` (reference §8).

        On the boundary the gradient of the domain's SDF is the outward unit normal; the factor goes
        into each product, as the reference's ``dn_sum_list`` writes it.
        """
        s = self.sdf("domain")
        factor = () if isinstance(c, int | float) and c == 1 else (as_expr(c),)
        return add(*(mul(*factor, de, ds) for de, ds in zip(self.grad(e), self.grad(s), strict=True)))

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
        value: float | np.ndarray | Callable[[np.ndarray], np.ndarray] = 0.0,
        alpha: float | np.ndarray | Callable[[np.ndarray], np.ndarray] = 1.0,
        beta: float | np.ndarray | Callable[[np.ndarray], np.ndarray] = 1.0,
        speed: float | np.ndarray | Callable[[np.ndarray], np.ndarray] = 1.0,
    ) -> None:
        """Boundary condition on ``side``: in 1-D 'left' (x=-1) or 'right' (x=1), in 2-D a boundary name.

        dirichlet: u = value; neumann: u_n = value; robin: alpha*u + beta*u_n = value;
        mur (waves): u_t + speed*u_n = value. u_n is the outward normal derivative (in 1-D
        -u_x on the left, u_x on the right; 1-D's neumann and robin use u_x as PDEformer-1 does).
        In 2-D ``value``, ``alpha``, ``beta`` and ``speed`` may be fields (values on the points or a
        callable): a ``cf`` node in the condition, as the reference's field coefficients.
        """
        self._index(u)
        if kind not in BC_KINDS:
            raise ValueError(f"bc kind must be one of {BC_KINDS}, got {kind!r}")
        if self.dim == 1:
            self._bc_1d(u, side, kind, value, alpha, beta, speed)
            return
        self.domain.boundary(side)  # names the pieces if side is not one
        alpha, beta, speed = (self._coefficient(c) for c in (alpha, beta, speed))
        if kind == "robin" and not self._nonzero(alpha) and not self._nonzero(beta):
            raise ValueError("a robin condition needs alpha or beta non-zero")
        if kind == "dirichlet":
            terms = u
        elif kind == "neumann":
            terms = self.dn(u)
        elif kind == "robin":
            unit = isinstance(alpha, float) and alpha == 1
            own = [u if unit else alpha * u] if self._nonzero(alpha) else []
            terms = add(*own, *([self.dn(u, beta)] if self._nonzero(beta) else []))
        else:
            terms = add(self.dt(u), self.dn(u, speed))
        self.bc_eq(u, side, terms - self._value_expr(value) if self._nonzero(value) else terms, kind)

    def bc_eq(self, u: Expr, side: str, expr: Expr, kind: str = "general") -> None:
        """2-D: the condition ``expr = 0`` on boundary piece ``side`` for ``u`` (PDEformer-2's eq0)."""
        self._index(u)
        if self.dim == 1:
            raise ValueError("bc_eq is for 2-D domains; in 1-D use bc(u, 'left'|'right', kind, ...)")
        self.domain.boundary(side)
        if any(b.unknown is u and b.side == side for b in self.boundary):
            raise ValueError(f"unknown {u.value!r} already has a boundary condition on {side!r}")
        # a one-term condition (u = 0) feeds eq0 directly, as the reference's bc_sum_eq0 builds it
        self.boundary.append(BoundaryCondition(u, side, kind, as_expr(expr), 0.0))

    def _bc_1d(
        self, u: Expr, side: str, kind: str, value: object, alpha: float, beta: float, speed: float
    ) -> None:
        if side not in ("left", "right"):
            raise ValueError(f"bc side must be 'left' or 'right', got {side!r}")
        if not isinstance(value, int | float | np.floating | np.integer):
            raise ValueError("a 1-D boundary value must be a number")
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

    @staticmethod
    def _nonzero(value: object) -> bool:
        return callable(value) or not isinstance(value, int | float | np.floating | np.integer) or value != 0

    def _coefficient(self, c: object) -> float | Expr:
        """A boundary coefficient: a number stays one, a field becomes a ``cf`` node."""
        if isinstance(c, int | float | np.floating | np.integer):
            return float(c)
        return self.field(c)

    def _value_expr(self, value: object) -> Expr:
        if isinstance(value, int | float | np.floating | np.integer):
            return coef(value)
        return self.field(value)

    @property
    def periodic(self) -> bool:
        return not self.boundary

    @property
    def evolved(self) -> list[bool]:
        """Per unknown: does ``dt`` of it appear in an equation or a boundary condition?

        Those unknowns need an initial condition. The others are time-independent: every unknown of
        a steady problem, or a constraint variable such as the pressure of incompressible flow.
        """
        exprs = self.equations + [b.expr for b in self.boundary]
        return [any(_differentiated_in_time(e, u) for e in exprs) for u in self.unknowns]

    @property
    def steady(self) -> bool:
        """True when no unknown has a time derivative: the solution is a function of space only."""
        return not any(self.evolved)

    def check(self) -> None:
        """Raise ValueError naming what is missing for a well-posed problem."""
        if not self.unknowns:
            raise ValueError("the PDE has no unknown; call pde.unknown()")
        if len(self.equations) != len(self.unknowns):
            raise ValueError(f"{len(self.unknowns)} unknown(s) but {len(self.equations)} equation(s)")
        allowed = {f"d{a}" for a in self.domain.axes}
        for e in self.equations + [b.expr for b in self.boundary]:
            bad = _derivatives(e) - allowed - {"dt"}
            if bad:
                raise ValueError(
                    f"{', '.join(sorted(bad))} on a {self.dim}-D domain (axes {', '.join(self.domain.axes)})"
                )
        evolved = self.evolved
        for i, u in enumerate(self.unknowns):
            if evolved[i] and i not in self.initial:
                raise ValueError(f"unknown {u.value!r} has no initial condition; call pde.ic()")
            if not evolved[i] and i in self.initial:
                raise ValueError(
                    f"unknown {u.value!r} has no time derivative (a steady or constraint variable, e.g. a "
                    "pressure): it takes no initial condition"
                )
            sides = {b.side for b in self.boundary if b.unknown is u}
            if self.dim == 1:
                if self.boundary and sides != {"left", "right"}:
                    raise ValueError(f"unknown {u.value!r} needs a boundary condition at both ends")
            else:
                missing = [n for n in self.domain.boundary_names if n not in sides]
                if missing:
                    raise ValueError(
                        f"unknown {u.value!r} needs a boundary condition on {', '.join(map(repr, missing))}"
                    )

    # -- helpers -------------------------------------------------------------------------------
    def _index(self, u: Expr) -> int:
        for i, v in enumerate(self.unknowns):
            if v is u:
                return i
        raise ValueError("expected an unknown created by this PDE's unknown()")

    def _function(self, g: object, what: str) -> Function:
        """Values of ``g`` on the points; a 1-D callable gets x [n], a 2-D one the points [n, 2]."""
        shape = self.points.shape[:1]
        if callable(g):
            arg = self.points[:, 0] if self.dim == 1 else self.points
            values = np.broadcast_to(np.asarray(g(arg), dtype=np.float64), shape).copy()
        else:
            values = np.asarray(g, dtype=np.float64)
            if values.shape != shape:
                raise ValueError(f"{what} has {values.shape} values but the PDE has {shape} points")
        return Function(self.points.astype(np.float64), values)


def _derivatives(e: Expr) -> set[str]:
    """The derivative kinds (dt, dx, dy, ...) used anywhere in ``e``."""
    out = {e.kind} if e.kind == "dt" or e.kind in DERIVATIVE_KINDS else set()
    for a in e.args:
        out |= _derivatives(a)
    return out


def _differentiated_in_time(e: Expr, u: Expr) -> bool:
    """Does ``dt(...)`` of an expression containing ``u`` occur in ``e``?"""
    if e.kind == "dt" and _mentions(e.args[0], u):
        return True
    return any(_differentiated_in_time(a, u) for a in e.args)


def _mentions(e: Expr, u: Expr) -> bool:
    return e is u or any(_mentions(a, u) for a in e.args)
