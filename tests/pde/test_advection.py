"""Pure advection with the shipped checkpoint, against the closed form u0(x - c t) (issue #18)."""

import numpy as np
import pytest

from foundry.pde.graph.parser import parse_function, parse_pde
from foundry.pde.inference import load_model, predict

T, X = np.linspace(0, 1, 101), np.linspace(-1, 1, 128, endpoint=False)
# per IC: the goal (0.25) where the shipped checkpoint meets it for every c (sin pi x: worst
# 0.097); a regression bound where it does not yet (measured worst 0.375 at c = -2; docs/pde-eval.md)
ICS = {"sin(pi*x)": 0.25, "cos(pi*x) + 0.5*sin(2*pi*x)": 0.40}


@pytest.fixture(scope="module")
def model():
    return load_model()[0]


@pytest.mark.parametrize("c", [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
def test_advection_as_users_type_it(model, c):
    mag = "" if abs(c) == 1 else f"{abs(c):g}*"
    eq = f"u_t {'+' if c > 0 else '-'} {mag}u_x = 0"  # "u_t + u_x = 0": the implicit unit coefficient
    for ic, bound in ICS.items():
        exact = parse_function(ic)((X[None, :] - c * T[:, None] + 1.0) % 2.0 - 1.0)
        pred = predict(model, parse_pde(eq, ic), T, X)
        err = np.linalg.norm(pred - exact) / np.linalg.norm(exact)
        assert err <= bound, (eq, ic, err)
