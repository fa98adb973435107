"""One graph per equation: rewrite equivalent ways of writing a PDE into the form training used.

The model reads the computational graph, not the mathematics, so ``u*u_x``, ``0.5*(u^2)_x`` and
``(0.5*u^2)_x`` (the same Burgers flux) were three different inputs, and only the last is what the
pretraining family writes; ``u_t + u_x = 0`` (an implicit coefficient 1, a graph without a ``coef``
node) was predicted far worse than ``u_t + 1.0*u_x = 0``. `canonicalize` maps an equation
``sum of terms = 0`` onto the sinus0 generator's layout
(`foundry.pde.data.sinus.params_to_pde`, flux form)::

    dt(u) + sum_k c_k * r_k(u) + source + dx( sum_j a_j * f_j(u) - kappa * dx(u) )

- terms moved across ``=`` are already on the left (the parser subtracts the right-hand side);
- numbers in front of a derivative move inside it (``c*dx(E)`` -> ``dx(c*E)``), and every ``dx``
  term joins one flux; ``u*u_x`` -> ``dx(0.5*u^2)``, ``u^2*u_x`` -> ``dx(u^3/3)``;
- implicit unit coefficients become explicit ``coef`` nodes (``u_x`` -> ``dx(1.0*u)``), except on
  terms that carry a coefficient field (the generator writes those bare, or negated);
- a coefficient on ``u_t`` divides the equation; terms are ordered as the generator orders them
  (the graph Transformer does not see the order, but the float summation does).

Numbers never move across a field s(x): ``s(x)*u_x`` is not ``dx(s(x)*u)``. Equations this cannot
read as "one u_t plus terms" (``u_tt``, two time derivatives) are returned unchanged.
"""

from __future__ import annotations

from foundry.pde.graph.symbolic import Expr, Function, add, coef, mul

# order of the polynomial terms in the generator: u, u^2, u^3, then anything else
_OTHER = 3


def _split(e: Expr) -> tuple[float, Expr | None]:
    """A term as (number, rest): ``-0.5*X`` -> (-0.5, X), ``X`` -> (1, X), ``3`` -> (3, None)."""
    if e.kind == "coef":
        return float(e.value), None
    if e.kind == "neg":
        c, r = _split(e.args[0])
        return -c, r
    if e.kind == "mul" and e.args[0].kind == "coef":
        rest = e.args[1:]
        return float(e.args[0].value), rest[0] if len(rest) == 1 else Expr("mul", rest)
    return 1.0, e


def _has_field(e: Expr) -> bool:
    return e.kind == "cf" or any(_has_field(a) for a in e.args)


def _power(r: Expr, u: Expr) -> int:
    """0, 1, 2 for u, u^2, u^3 (as the generator builds them), else `_OTHER`."""
    if r is u:
        return 0
    if r.kind == "square" and r.args[0] is u:
        return 1
    if r.kind == "mul" and len(r.args) == 2:
        a, b = r.args
        if (a is u and b.kind == "square" and b.args[0] is u) or (
            b is u and a.kind == "square" and a.args[0] is u
        ):
            return 2
    return _OTHER


def _as_flux(c: float, r: Expr, u: Expr) -> list[tuple[float, Expr]] | None:
    """Flux terms (a, f) with c*r = dx(sum a*f), or None when c*r is not a derivative in x."""
    if r.kind == "dx":
        return [(c * a, f) for a, f in _terms(r.args[0]) if f is not None]  # dx(constant) = 0
    if r.kind == "mul" and len(r.args) == 2:
        a, b = r.args
        if b.kind != "dx":
            a, b = b, a
        if b.kind == "dx" and b.args[0] is u:
            if a is u:  # u u_x = (u^2 / 2)_x
                return [(0.5 * c, Expr("square", (u,)))]
            if a.kind == "square" and a.args[0] is u:  # u^2 u_x = (u^3 / 3)_x
                return [(c / 3.0, Expr("mul", (u, Expr("square", (u,)))))]
    return None


def _terms(e: Expr) -> list[tuple[float, Expr | None]]:
    return [_split(t) for t in (e.args if e.kind == "add" else (e,))]


def _scaled_field(r: Expr, factor: float) -> Expr:
    """``r`` with its first coefficient field multiplied by ``factor`` (numbers stay off fields)."""
    if r.kind == "cf":
        f = r.value
        return Expr("cf", value=Function(f.points, f.values * factor))
    for i, a in enumerate(r.args):
        if _has_field(a):
            return Expr(r.kind, r.args[:i] + (_scaled_field(a, factor),) + r.args[i + 1 :], r.value)
    return r


def _term(c: float, r: Expr) -> Expr:
    if _has_field(r):  # the generator writes field terms bare or negated, never with a number
        if c in (1.0, -1.0):
            return r if c == 1.0 else -r
        return _scaled_field(r, c)
    return mul(coef(c), r)


def canonicalize(lhs: Expr, u: Expr) -> Expr:
    """The canonical form of the equation ``lhs = 0`` in the unknown ``u`` (see the module doc)."""
    terms = _terms(lhs)
    time = [i for i, (_, r) in enumerate(terms) if r is not None and r.kind == "dt" and r.args[0] is u]
    if len(time) != 1:
        return lhs
    c_t = terms[time[0]][0]
    scale = 1.0 / c_t
    reactions: list[tuple[float, Expr]] = []
    sources: list[Expr] = []
    flux: list[tuple[float, Expr]] = []
    for i, (c, r) in enumerate(terms):
        if i == time[0]:
            continue
        c *= scale
        if r is None:
            sources.append(coef(c))
            continue
        as_flux = None if _has_field(r) and r.kind != "dx" else _as_flux(c, r, u)
        if as_flux is not None:
            flux.extend(as_flux)
        elif r.kind == "cf" or (_has_field(r) and not _depends_on(r, u)):
            sources.append(_term(c, r))
        else:
            reactions.append((c, r))
    out = [Expr("dt", (u,))]
    out += [_term(c, r) for c, r in sorted(reactions, key=lambda t: _power(t[1], u))]
    out += sources
    if flux:
        parts = [_term(a, f) for a, f in sorted(flux, key=lambda t: (_power(t[1], u), _has_field(t[1])))]
        out.append(Expr("dx", (parts[0] if len(parts) == 1 else add(*parts),)))
    return add(*out)


def _depends_on(e: Expr, u: Expr) -> bool:
    return e is u or any(_depends_on(a, u) for a in e.args)
