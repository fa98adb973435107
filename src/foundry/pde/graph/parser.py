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
    postfix  := atom ('_' [tx]+)*          derivatives: u_t, u_xx, (u^2)_x
    atom     := number | name | name '(' sum ')' | '(' sum ')'

Names: ``u`` (the unknown), ``x``, ``pi``, ``e``, functions ``sin cos exp tanh abs sqrt dx dt``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from foundry.pde.graph.canonical import canonicalize
from foundry.pde.graph.symbolic import PDE, Expr

_TOKEN = re.compile(
    r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z][A-Za-z0-9]*)"
    r"|(_[A-Za-z]+)|(\*\*|[-+*/^()=]))"
)
_SYMBOLIC_FUNCS = {"sin", "cos", "exp", "dx", "dt"}
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
    """A known function of x (closure over numpy) and its text, for error messages."""

    def __init__(self, f: Callable[[np.ndarray], np.ndarray], src: str = "x") -> None:
        self.f, self.src = f, src


def _src(v: object) -> str:
    return v.src if isinstance(v, _XFunc) else f"{v:g}" if isinstance(v, float) else repr(v)


def first_bad_point(values: np.ndarray, x: np.ndarray) -> str | None:
    """'nan at x = -0.5' for the first non-finite value, None when all are finite."""
    bad = np.flatnonzero(~np.isfinite(values))
    return None if bad.size == 0 else f"{values[bad[0]]} at x = {x[bad[0]]:.6g}"


Value = float | _XFunc | Expr


class _Parser:
    def __init__(self, text: str, pde: PDE | None, u: Expr | None) -> None:
        self.text, self.toks, self.i = text, _tokenize(text), 0
        self.pde, self.u = pde, u
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
                if var not in "tx":
                    raise self.error(tok, "derivative suffixes may contain only t and x")
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
            if name == "x":
                return _XFunc(lambda x: x, "x")
            if name == "u" and self.u is not None:
                return self.u
            allowed = "u, x, pi, e" if self.u is not None else "x, pi, e"
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
        with np.errstate(all="ignore"):
            values = np.broadcast_to(np.asarray(v.f(self.pde.x), dtype=np.float64), self.pde.x.shape)
        bad = first_bad_point(values, self.pde.x)
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
        fa = a.f if isinstance(a, _XFunc) else (lambda x, c=a: np.full_like(x, c))
        fb = b.f if isinstance(b, _XFunc) else (lambda x, c=b: np.full_like(x, c))
        return _XFunc(lambda x: _binary(op, fa(x), fb(x)), f"({_src(a)}{op}{_src(b)})")

    def apply(self, name: str, arg: Value, tok: _Tok) -> Value:
        if name in ("dx", "dt"):
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
            raise self.error(tok, "derivatives apply only to expressions in u")
        return PDE.dt(v) if var == "t" else PDE.dx(v)


def _binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}[op](a, b)


def parse_function(text: str) -> Callable[[np.ndarray], np.ndarray]:
    """Parse a function of x, e.g. ``"sin(pi*x) + 0.5*cos(2*pi*x)"``, into a numpy callable."""
    v = _Parser(text, None, None).equation()
    if isinstance(v, float):
        return lambda x, c=v: np.full_like(np.asarray(x, dtype=np.float64), c)
    return lambda x, f=v.f: np.asarray(f(np.asarray(x, dtype=np.float64)), dtype=np.float64)


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
    lhs = _Parser(equation, pde, u).equation()
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
