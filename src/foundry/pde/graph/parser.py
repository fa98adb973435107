"""A safe parser for PDEs and functions written as text, e.g. ``"u_t + (0.5*u^2)_x - 0.01*u_xx = 0"``.

No ``eval``: a tokenizer and a recursive-descent parser over a small grammar. Each sub-expression
evaluates to a number, a known function of x, or a symbolic `Expr` in the unknown ``u``; when the
two meet, numbers become ``coef`` nodes and functions of x become coefficient fields (``cf`` nodes),
so ``"u_t + sin(pi*x) = 0"`` gives a PDE with the source field sin(pi x).

Grammar::

    equation := sum ['=' sum]
    sum      := product (('+' | '-') product)*
    product  := unary (('*' | '/') unary)*
    unary    := ('-' | '+') unary | power
    power    := postfix [('^' | '**') unary]
    postfix  := atom ('_' [txyn]+)*        derivatives: u_t, u_xx, u_xy, (u^2)_x, u_n
    atom     := number | name | name '(' sum ')' | '(' sum ')'

Names: the unknowns (``u``; in 2-D any names given, e.g. ``u, v``), the axes ``x`` (and ``y``),
``pi``, ``e``, functions ``sin cos exp tanh abs sqrt dx dy dt``. ``_n`` (the outward normal
derivative) is allowed in 2-D boundary conditions only. `parse_pde2d` reads a 2-D problem: a
domain (`parse_domain`), one equation per unknown, initial conditions and boundary conditions
written as ``"circle: u + 0.5*u_n = 0"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from foundry.pde.graph.canonical import canonicalize
from foundry.pde.graph.domain import AXES, Domain
from foundry.pde.graph.symbolic import PDE, Expr, add, mul

_TOKEN = re.compile(
    r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z][A-Za-z0-9]*)"
    r"|(_[A-Za-z]+)|(\*\*|[-+*/^()=]))"
)
_SYMBOLIC_FUNCS = {"sin", "cos", "exp", "dx", "dy", "dt"}
_NUMERIC_FUNCS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sin": np.sin,
    "cos": np.cos,
    "exp": np.exp,
    "tanh": np.tanh,
    "abs": np.abs,
    "sqrt": np.sqrt,
}
_CONSTANTS = {"pi": np.pi, "e": np.e}


class PDEParseError(ValueError):
    """A text PDE or function could not be parsed; the message names the offending token."""


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, name, deriv, op, end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            bad = text[pos:].lstrip()[0]
            raise PDEParseError(
                f"unexpected character {bad!r} at position {text.index(bad, pos)} in {text!r}"
            )
        kind = ("num", "name", "deriv", "op")[m.lastindex - 1]
        toks.append(_Tok(kind, m.group(m.lastindex), m.start(m.lastindex)))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _XFunc:
    """A known function of space (a numpy closure over points [n, d]) and its text, for messages."""

    def __init__(self, f: Callable[[np.ndarray], np.ndarray], src: str = "x") -> None:
        self.f, self.src = f, src


def _src(v: object) -> str:
    return v.src if isinstance(v, _XFunc) else f"{v:g}" if isinstance(v, float) else repr(v)


def first_bad_point(values: np.ndarray, x: np.ndarray) -> str | None:
    """'nan at x = -0.5' (2-D: 'at (x, y) = (0.5, 0.5)') for the first non-finite value, else None."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size == 0:
        return None
    p = np.asarray(x)[bad[0]]
    if np.ndim(p) == 0 or np.size(p) == 1:
        return f"{values[bad[0]]} at x = {float(np.ravel(p)[0]):.6g}"
    names = ", ".join(AXES[: np.size(p)])
    return f"{values[bad[0]]} at ({names}) = ({', '.join(f'{c:.6g}' for c in p)})"


Value = float | _XFunc | Expr


class _Parser:
    def __init__(
        self,
        text: str,
        pde: PDE | None,
        unknowns: dict[str, Expr] | None,
        dim: int = 1,
        normal: bool = False,
    ) -> None:
        self.text, self.toks, self.i = text, _tokenize(text), 0
        self.pde, self.unknowns = pde, unknowns or {}
        self.axes = AXES[:dim]
        self.suffixes = "t" + "".join(self.axes) + ("n" if normal else "")
        self.check_parentheses()

    def check_parentheses(self) -> None:
        """Blame an unclosed '(' or a stray ')' first: otherwise the parser trips over a later token."""
        stack: list[_Tok] = []
        for tok in self.toks:
            if tok.text == "(":
                stack.append(tok)
            elif tok.text == ")":
                if not stack:
                    raise self.error(tok, "')' without a matching '('")
                stack.pop()
        if stack:
            raise self.error(stack[-1], "'(' is never closed (missing ')')")

    # -- token helpers -------------------------------------------------------------------------
    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, tok: _Tok, why: str) -> PDEParseError:
        shown = tok.text if tok.kind != "end" else "end of input"
        return PDEParseError(f"{why}: {shown!r} at position {tok.pos} in {self.text!r}")

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text:
            raise self.error(tok, f"expected {text!r}, found")

    # -- grammar ---------------------------------------------------------------------------------
    def equation(self) -> Value:
        lhs = self.sum()
        if self.peek().text == "=":
            self.take()
            lhs = self.combine("-", lhs, self.sum())
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(tok, "unexpected token")
        return lhs

    def sum(self) -> Value:
        acc = self.product()
        while self.peek().text in ("+", "-"):
            op = self.take().text
            acc = self.combine(op, acc, self.product())
        return acc

    def product(self) -> Value:
        acc = self.unary()
        while self.peek().text in ("*", "/"):
            tok = self.take()
            rhs = self.unary()
            if tok.text == "/" and not isinstance(rhs, float | _XFunc):
                raise self.error(tok, "division by an expression in u is not supported")
            acc = self.combine(tok.text, acc, rhs)
        return acc

    def unary(self) -> Value:
        if self.peek().text in ("-", "+"):
            sign = self.take().text
            v = self.unary()
            if sign == "+":
                return v
            return -v if isinstance(v, Expr) else self.combine("*", -1.0, v)
        return self.power()

    def power(self) -> Value:
        base = self.postfix()
        if self.peek().text in ("^", "**"):
            tok = self.take()
            exponent = self.unary()
            if not isinstance(exponent, float):
                raise self.error(tok, "the exponent must be a number")
            if isinstance(base, Expr):
                if exponent not in (1.0, 2.0, 3.0):
                    raise self.error(
                        tok, f"only powers 1, 2, 3 of u-expressions are supported, got {exponent:g}"
                    )
                return base ** int(exponent)
            return self.combine("^", base, exponent)
        return base

    def postfix(self) -> Value:
        v = self.atom()
        while self.peek().kind == "deriv":
            tok = self.take()
            for var in tok.text[1:]:
                if var not in self.suffixes:
                    allowed = " and ".join(", ".join(self.suffixes).rsplit(", ", 1))
                    where = " (n only in a 2-D boundary condition)" if "n" not in self.suffixes else ""
                    raise self.error(tok, f"derivative suffixes may contain only {allowed}{where}")
                v = self.derivative(var, v, tok)
        return v

    def atom(self) -> Value:
        tok = self.take()
        if tok.kind == "num":
            if not np.isfinite(float(tok.text)):
                raise self.error(tok, "number overflows double precision (largest ~1.8e308)")
            return float(tok.text)
        if tok.text == "(":
            v = self.sum()
            self.expect(")")
            return v
        if tok.kind == "name":
            name = tok.text
            if self.peek().text == "(":
                if name not in _SYMBOLIC_FUNCS | set(_NUMERIC_FUNCS):
                    raise self.error(tok, "unknown function")
                self.take()
                arg = self.sum()
                self.expect(")")
                return self.apply(name, arg, tok)
            if name in _CONSTANTS:
                return float(_CONSTANTS[name])
            if name in self.axes:
                k = self.axes.index(name)
                return _XFunc(lambda p, k=k: p[:, k], name)
            if name in self.unknowns:
                return self.unknowns[name]
            allowed = ", ".join([*self.unknowns, *self.axes, "pi", "e"])
            raise self.error(tok, f"unknown name (allowed: {allowed})")
        raise self.error(tok, "unexpected token")

    # -- semantics ----------------------------------------------------------------------------------
    def to_expr(self, v: Value) -> Expr:
        if isinstance(v, Expr):
            return v
        if isinstance(v, float):
            if not np.isfinite(v):
                raise PDEParseError(f"a coefficient evaluates to {v} (overflow or 0/0) in {self.text!r}")
            return self.pde.coef(v)
        return self.field(v)

    def field(self, v: _XFunc) -> Expr:
        """A coefficient field, refused with the point where it is not finite (1/x at x = 0)."""
        pts = self.pde.points
        with np.errstate(all="ignore"):
            values = np.broadcast_to(np.asarray(v.f(pts), dtype=np.float64), pts.shape[:1])
        bad = first_bad_point(values, pts)
        if bad is not None:
            raise PDEParseError(f"the coefficient field {v.src} is not finite: {bad} (in {self.text!r})")
        return self.pde.field(values.copy())

    def combine(self, op: str, a: Value, b: Value) -> Value:
        if op in "+-" and isinstance(b, float) and b == 0.0:
            return a  # "... = 0" and "+ 0" add no node
        if isinstance(a, Expr) or isinstance(b, Expr):
            ea, eb = self.to_expr(a), self.to_expr(b)
            if op == "+":
                return ea + eb
            if op == "-":
                return ea - eb
            if op == "*":
                return ea * eb
            if op == "/" and isinstance(b, float):
                if b == 0.0:
                    raise PDEParseError(f"division by zero in {self.text!r}")
                return ea * (1.0 / b)
            return ea * self.field(_XFunc(lambda x, f=b.f: _binary("/", 1.0, f(x)), f"1/{_src(b)}"))
        if isinstance(a, float) and isinstance(b, float):
            return float(_binary(op, np.float64(a), np.float64(b)))
        fa = a.f if isinstance(a, _XFunc) else (lambda p, c=a: np.full(len(p), c))
        fb = b.f if isinstance(b, _XFunc) else (lambda p, c=b: np.full(len(p), c))
        return _XFunc(lambda x: _binary(op, fa(x), fb(x)), f"({_src(a)}{op}{_src(b)})")

    def apply(self, name: str, arg: Value, tok: _Tok) -> Value:
        if name in ("dx", "dy", "dt"):
            if name[1] not in self.suffixes:
                raise self.error(tok, f"{name} on a {len(self.axes)}-D domain")
            return self.derivative(name[1], arg, tok)
        if isinstance(arg, Expr):
            if name not in _SYMBOLIC_FUNCS:
                raise self.error(tok, "function not available on u-expressions (use sin, cos, exp)")
            return getattr(PDE, name)(arg)
        if isinstance(arg, float):
            with np.errstate(all="ignore"):  # exp(1000) = inf is reported where it becomes a coefficient
                return float(_NUMERIC_FUNCS[name](np.float64(arg)))
        return _XFunc(lambda x, f=arg.f, g=_NUMERIC_FUNCS[name]: g(f(x)), f"{name}({_src(arg)})")

    def derivative(self, var: str, v: Value, tok: _Tok) -> Value:
        if not isinstance(v, Expr):
            raise self.error(tok, "derivatives apply only to expressions in the unknowns")
        if var == "n":
            return self.pde.dn(v)
        return self.pde.derivative(f"d{var}", v)


def _binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}[op](a, b)


def parse_function(text: str, dim: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """Parse a function of space into a numpy callable.

    1-D: of x, e.g. ``"sin(pi*x) + 0.5*cos(2*pi*x)"``; the callable takes x [n]. 2-D: of x and y,
    e.g. ``"exp(-50*((x-0.5)^2 + (y-0.5)^2))"``; the callable takes points [n, 2].
    """
    v = _Parser(text, None, None, dim).equation()
    if isinstance(v, Expr):
        raise PDEParseError(f"a function of space cannot contain an unknown: {text!r}")

    def call(a: np.ndarray, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        if dim == 1:  # x of any shape: evaluated as points [n, 1], returned in x's shape
            return np.asarray(f(a.reshape(-1, 1)), dtype=np.float64).reshape(a.shape)
        return np.asarray(f(a), dtype=np.float64)

    if isinstance(v, float):
        return lambda a, c=v: call(a, lambda p: np.full(len(p), c))
    return lambda a, f=v.f: call(a, f)


def parse_pde(
    equation: str,
    ic: str | Callable[[np.ndarray], np.ndarray],
    x: np.ndarray | None = None,
    canonical: bool = True,
) -> PDE:
    """Parse a one-unknown periodic PDE in text form with its initial condition.

    Parameters
    ----------
    equation : str
        e.g. ``"u_t + (0.5*u^2)_x - 0.01*u_xx = 0"``; ``= rhs`` is moved to the left.
    ic : str or callable
        u(0, x), e.g. ``"sin(pi*x)"``.
    x : np.ndarray, optional
        Points on which functions are sampled (default: 128 periodic points on [-1, 1)).
    canonical : bool
        Rewrite the equation into the training family's form (`foundry.pde.graph.canonical`), so
        that equivalent ways of writing it give one graph and one prediction.
    """
    pde = PDE() if x is None else PDE(x=np.asarray(x, dtype=np.float64))
    u = pde.unknown("u")
    lhs = _Parser(equation, pde, {"u": u}).equation()
    if not isinstance(lhs, Expr) or not _contains_dt(lhs):
        raise PDEParseError(f"the equation {equation!r} has no time derivative u_t")
    pde.eq(canonicalize(lhs, u) if canonical else lhs)
    g = parse_function(ic) if isinstance(ic, str) else ic
    with np.errstate(all="ignore"):
        values = np.broadcast_to(np.asarray(g(pde.x), dtype=np.float64), pde.x.shape)
    bad = first_bad_point(values, pde.x)
    if bad is not None:
        raise PDEParseError(
            f"the initial condition {ic if isinstance(ic, str) else 'u0'!r} is not finite: {bad}"
        )
    pde.ic(u, values.copy())
    return pde


def _contains_dt(e: Expr) -> bool:
    return e.kind == "dt" or any(_contains_dt(a) for a in e.args)


def parse_domain(text: str) -> Domain:
    """A 2-D domain from text.

    ``periodic`` (the unit square, periodic both ways), ``square`` (non-periodic both ways:
    boundaries left, right, bottom, top), ``periodic-x`` / ``periodic-y`` (a square periodic along
    one axis), ``disk`` or ``disk:R`` or ``disk:R,cx,cy`` (boundary 'circle'; default R = 0.4 about
    (0.5, 0.5)), ``sdf:<expression in x, y>`` (negative inside; boundary 'boundary').
    """
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    squares = {
        "periodic": (True, True),
        "square": (False, False),
        "periodic-x": (True, False),
        "periodic-y": (False, True),
    }
    if kind in squares and not rest:
        return Domain.square(squares[kind])
    if kind == "disk":
        try:
            nums = [float(v) for v in rest.split(",")] if rest.strip() else []
        except ValueError:
            raise PDEParseError(f"disk takes numbers R[,cx,cy], got {rest!r}") from None
        if len(nums) not in (0, 1, 3):
            raise PDEParseError(f"disk takes R or R,cx,cy, got {rest!r}")
        radius = nums[0] if nums else 0.4
        center = (nums[1], nums[2]) if len(nums) == 3 else (0.5, 0.5)
        try:
            return Domain.disk(radius, center)
        except ValueError as e:
            raise PDEParseError(str(e)) from None
    if kind == "sdf" and rest.strip():
        return Domain.from_sdf(parse_function(rest, dim=2))
    raise PDEParseError(
        f"unknown domain {text!r}: use periodic, square, periodic-x, periodic-y, disk[:R[,cx,cy]] "
        "or sdf:<expression in x, y>"
    )


def parse_pde2d(
    equations: str | list[str],
    ics: str | list[str] = (),
    domain: str | Domain = "periodic",
    bcs: list[str] | tuple[str, ...] = (),
    unknowns: str | list[str] = "u",
    resolution: int = 32,
    canonical: bool = True,
) -> PDE:
    """Parse a 2-D PDE (a system: one equation per unknown, an initial condition per evolved unknown).

    Parameters
    ----------
    equations : str or list of str
        e.g. ``"u_t - 0.01*(u_xx + u_yy) + u^3 = 0"``; for a system one per unknown, e.g.
        ``["u_t - v = 0", "v_t - (u_xx + u_yy) = 0"]``.
    ics : str or list of str
        u(0, x, y) per unknown with a time derivative, in order, e.g. ``"sin(2*pi*x)*cos(2*pi*y)"``;
        empty for a time-independent problem (``"-0.1*(u_xx + u_yy) + u = sin(pi*x)"``), none for
        a constraint variable (the pressure p of ``"u_x + v_y = 0"``).
    domain : str or Domain
        See `parse_domain`.
    bcs : list of str
        ``"<boundary>: <condition> = <value>"``, e.g. ``"circle: u + 0.5*u_n = 0"``; ``u_n`` is the
        outward normal derivative. One per unknown and boundary piece; ``"*: ..."`` puts the same
        condition on every piece.
    unknowns : str or list of str
        Names of the unknowns in order (comma-separated or a list); the model predicts the first
        unless asked for another.
    resolution : int
        Grid points per axis on which functions are given to the model (the checkpoint's grid).
    canonical : bool
        Rewrite equations of the training families (DCR, the wave system) the way the family
        builders write them (`_canonical2d`), so that equivalent texts give one graph.
    """
    eqs = [equations] if isinstance(equations, str) else list(equations)
    ic_texts = [ics] if isinstance(ics, str) else list(ics)
    names = [n.strip() for n in unknowns.split(",")] if isinstance(unknowns, str) else list(unknowns)
    for n in names:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", n) or n in (*AXES, "pi", "e", *_NUMERIC_FUNCS):
            raise PDEParseError(f"{n!r} cannot name an unknown")
    if len(set(names)) != len(names):
        raise PDEParseError(f"unknown names repeat: {names}")
    if len(eqs) != len(names):
        raise PDEParseError(
            f"{len(names)} unknown(s) ({', '.join(names)}) need as many equations; got {len(eqs)}"
        )
    dom = parse_domain(domain) if isinstance(domain, str) else domain
    pde = PDE(domain=dom, resolution=resolution)
    us = {n: pde.unknown(n) for n in names}
    for text in eqs:
        lhs = _Parser(text, pde, us, dim=2).equation()
        if not isinstance(lhs, Expr) or not any(_contains(lhs, u) for u in us.values()):
            raise PDEParseError(f"the equation {text!r} does not contain an unknown")
        pde.eq(lhs)
    if canonical:
        _canonical2d(pde)
    for text in bcs:
        side, sep, cond = text.partition(":")
        side = side.strip()
        if not sep or not cond.strip():
            raise PDEParseError(
                f"a boundary condition reads '<boundary>: <condition> = <value>', got {text!r}"
            )
        sides = dom.boundary_names if side == "*" else (side,)
        if side != "*" and side not in dom.boundary_names:
            have = ", ".join(dom.boundary_names) or "none: the domain is periodic"
            raise PDEParseError(f"{text!r}: the domain has no boundary {side!r} (its boundaries: {have})")
        for piece in sides:
            lhs = _Parser(cond, pde, us, dim=2, normal=True).equation()
            if not isinstance(lhs, Expr):
                raise PDEParseError(f"the boundary condition {text!r} does not contain an unknown")
            lhs = _distribute_over_normal(lhs)
            owners = [n for n, u in us.items() if _contains(lhs, u)]
            if len(owners) != 1:
                raise PDEParseError(f"the boundary condition {text!r} must involve exactly one unknown")
            try:
                pde.bc_eq(us[owners[0]], piece, lhs, "text")
            except ValueError as e:
                raise PDEParseError(f"{text!r}: {e}") from None
    # initial conditions belong to the unknowns with a time derivative, in order (none when steady)
    evolved = [n for n, e in zip(names, pde.evolved, strict=True) if e]
    if len(ic_texts) != len(evolved):
        which = f"one each for {', '.join(evolved)}" if evolved else "none: the problem is time-independent"
        raise PDEParseError(
            f"{len(ic_texts)} initial condition(s) given; the unknowns with a time derivative need {which}"
        )
    for name, text in zip(evolved, ic_texts, strict=True):
        values = parse_function(text, dim=2)(pde.points)
        bad = first_bad_point(values, pde.points)
        if bad is not None:
            raise PDEParseError(f"the initial condition of {name} {text!r} is not finite: {bad}")
        pde.ic(us[name], values)
    try:
        pde.check()
    except ValueError as e:
        raise PDEParseError(str(e)) from None
    return pde


def _contains(e: Expr, u: Expr) -> bool:
    return e is u or any(_contains(a, u) for a in e.args)


def _distribute_over_normal(e: Expr) -> Expr:
    """``c * u_n`` -> ``sum_k c d_k u d_k sdf`` (c a number or a field): the graph `PDE.dn(u, c)` and
    `PDE.bc` build."""
    args = tuple(_distribute_over_normal(a) for a in e.args)
    if e.kind == "mul" and len(args) == 2 and args[0].kind in ("coef", "cf") and _is_normal_sum(args[1]):
        return add(*(mul(args[0], *t.args) for t in args[1].args))
    if args == e.args:
        return e
    return add(*args) if e.kind == "add" else Expr(e.kind, args, e.value)


def _is_normal_sum(e: Expr) -> bool:
    return e.kind == "add" and all(
        t.kind == "mul" and any(a.kind.startswith("d") and a.args[0].kind == "sdf" for a in t.args)
        for t in e.args
    )


def _canonical2d(pde: PDE) -> None:
    """Equations of the DCR form (time-dependent, or steady and linear) or of the wave system,
    rewritten as `pde2d_builders` (`steady2d`) writes them.

    The graph is what the model reads: ``u^2 + (0.5*u^2)_x`` has one ``u^2`` node in the training
    data (shared by reaction and flux) but two as typed, and ``(0.5*u^2)_x + (0.1*u)_x`` one flux.
    Equations outside these forms are left as written.
    """
    from foundry.pde.data.pde2d_builders import dcr_equation, wave_equations
    from foundry.pde.data.reference2d import read_dcr, read_wave
    from foundry.pde.data.steady2d import steady_equation
    from foundry.pde.data.symbolic_solver import UnsupportedPDE

    try:
        if len(pde.unknowns) == 1:
            f = read_dcr(pde)
            if f.steady and not f.linear:  # outside the steady family: the graph as typed
                return
            pde.equations.clear()
            if f.steady:
                steady_equation(pde, pde.unknowns[0], f.a, f.c0[0], f.c1[0], f.c2[0], f.source)
            else:
                dcr_equation(pde, pde.unknowns[0], f.a, f.c0, f.c1, f.c2, f.source)
        elif len(pde.unknowns) == 2:
            w = read_wave(pde)
            pde.equations.clear()
            wave_equations(pde, *pde.unknowns, w.mu, w.c2, w.source)
    except UnsupportedPDE:
        pass
