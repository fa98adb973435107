"""A text PDE with named unknown coefficients, e.g. ``"u_t + a*u_x - b*u_xx = 0"`` with a, b unknown.

The text parser knows only numbers, ``u``, ``x``, ``pi``, ``e`` and a few functions, so each
unknown name is replaced by a number before parsing; `foundry.pde.inverse.surrogate.scalar_slots`
then finds which graph numbers move with it (``-b*u_xx`` stores ``-b``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from foundry.pde.graph.parser import parse_pde
from foundry.pde.graph.symbolic import PDE

RESERVED = {"u", "x", "t", "pi", "e", "sin", "cos", "exp", "tanh", "abs", "sqrt", "dx", "dt"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def _pattern(name: str) -> re.Pattern:
    # a whole name token: not preceded by a letter, digit or '_' (u_x) and not followed by one
    return re.compile(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9])")


def check_names(equation: str, names: list[str]) -> None:
    """ValueError naming the first invalid, reserved, repeated or absent unknown."""
    if not names:
        raise ValueError("give at least one unknown coefficient name")
    if len(set(names)) != len(names):
        raise ValueError(f"unknown names must be distinct, got {names}")
    for n in names:
        if not _NAME.fullmatch(n):
            raise ValueError(f"unknown name {n!r} must be letters and digits, starting with a letter")
        if n in RESERVED:
            raise ValueError(f"unknown name {n!r} is reserved in PDE text ({', '.join(sorted(RESERVED))})")
        if not _pattern(n).search(equation):
            raise ValueError(f"unknown {n!r} does not appear in the equation {equation!r}")


def text_template(equation: str, names: list[str], x: np.ndarray) -> Callable[[np.ndarray], PDE]:
    """theta (K,) -> the parsed PDE with ``names[k] = theta[k]`` (IC zero; the inversion supplies ICs)."""
    check_names(equation, names)
    patterns = [_pattern(n) for n in names]

    def build(theta: np.ndarray) -> PDE:
        text = equation
        for p, v in zip(patterns, theta, strict=True):
            text = p.sub(f"({float(v)!r})", text)
        return parse_pde(text, lambda z: np.zeros_like(z), x=x)

    return build
