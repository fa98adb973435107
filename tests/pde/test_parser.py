import numpy as np
import pytest

from foundry.pde.graph.parser import PDEParseError, parse_function, parse_pde
from foundry.pde.graph.symbolic import PDE


def test_burgers_text_matches_builder():
    pde = parse_pde("u_t + (0.5*u^2)_x - 0.01*u_xx = 0", "sin(pi*x)", canonical=False)
    ref = PDE()
    u = ref.unknown()
    ref.eq(ref.dt(u) + ref.dx(0.5 * u**2) - 0.01 * ref.dx(ref.dx(u)))
    assert repr(pde.equations[0]) == repr(ref.equations[0])
    assert repr(pde.equations[0]) == "add(dt(u), dx(mul(0.5, square(u))), mul(-0.01, dx(dx(u))))"
    np.testing.assert_allclose(pde.initial[0].values, np.sin(np.pi * pde.x))


def test_rhs_moves_left_and_constants_fold():
    pde = parse_pde("u_t = 2*3*u_xx - 1", "x^2", canonical=False)
    assert repr(pde.equations[0]) == "add(dt(u), mul(-6, dx(dx(u))), 1)"
    np.testing.assert_allclose(pde.initial[0].values, pde.x**2)


def test_function_of_x_becomes_field():
    pde = parse_pde("u_t + (0.1 + 0.05*cos(pi*x))*u_x + sin(pi*x) = 0", "0")
    eq = pde.equations[0]
    assert [a.kind for a in eq.args] == ["dt", "mul", "cf"]
    field = eq.args[1].args[0]
    assert field.kind == "cf"
    np.testing.assert_allclose(field.value.values, 0.1 + 0.05 * np.cos(np.pi * pde.x))
    np.testing.assert_allclose(eq.args[2].value.values, np.sin(np.pi * pde.x))


def test_cubic_and_nested_functions():
    pde = parse_pde("u_t + u^3 + dx(exp(u)) - u*u = 0", "tanh(x)", canonical=False)
    assert repr(pde.equations[0]) == "add(dt(u), mul(u, square(u)), dx(exp(u)), neg(square(u)))"
    assert (
        repr(parse_pde("-u_xx + u_t = 0", "x", canonical=False).equations[0]) == "add(neg(dx(dx(u))), dt(u))"
    )


def test_parse_function_values():
    f = parse_function("sin(pi*x) + 0.5*cos(2*pi*x)^2 - abs(x)/2")
    x = np.linspace(-1, 1, 7)
    np.testing.assert_allclose(f(x), np.sin(np.pi * x) + 0.5 * np.cos(2 * np.pi * x) ** 2 - np.abs(x) / 2)
    np.testing.assert_allclose(parse_function("1.5e-1")(x), 0.15)


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("u_t + foo*u = 0", "'foo' at position 6"),
        ("u_t + u_x = $", "'$' at position 12"),
        ("u_t + u^4 = 0", "'^' at position 7"),
        ("u_t + (u = 0", "never closed (missing ')'): '(' at position 6"),
        ("u_t + u_y = 0", "'_y'"),
        ("u_t + u/u = 0", "'/' at position 7"),
        ("u_t + u u = 0", "'u' at position 8"),
        ("u_xx + u = 0", "no time derivative"),
    ],
)
def test_errors_name_the_bad_token(text, token):
    with pytest.raises(PDEParseError) as err:
        parse_pde(text, "sin(pi*x)")
    assert token in str(err.value)


def test_ic_may_not_use_u():
    with pytest.raises(PDEParseError, match="'u' at position 0"):
        parse_pde("u_t + u_x = 0", "u + x")
