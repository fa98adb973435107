"""Solvers against closed forms, a finer time step, and each other."""

import numpy as np
import pytest

from foundry.pde.data.fd_solver import nonperiodic_grid, solve_nonperiodic
from foundry.pde.data.sinus import params_to_pde, sample_params
from foundry.pde.data.spectral_solver import checkerboard, solve_periodic
from foundry.pde.data.symbolic_solver import UnsupportedPDE, solve_symbolic
from foundry.pde.graph.parser import parse_pde

N = 64
X = np.linspace(-1, 1, N, endpoint=False)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def solve_one(u0, c0=(0, 0, 0), c1=(0, 0, 0), source=0.0, kappa=1e-2, num_t=11, dt=1e-3):
    u, ok = solve_periodic(
        u0[None],
        np.array([c0], float),
        np.array([c1], float),
        np.broadcast_to(source, X.shape)[None],
        np.broadcast_to(kappa, X.shape)[None],
        num_t=num_t,
        dt=dt,
    )
    return u[0], ok[0]


def test_advection_diffusion_reaction_closed_form():
    # u_t + 0.3 u + (0.7 u - 0.05 u_x)_x = 0, u0 = sin(pi x):
    # exact u = exp(-(0.3 + 0.05 pi^2) t) sin(pi (x - 0.7 t))
    u, ok = solve_one(np.sin(np.pi * X), c0=(0.3, 0, 0), c1=(0.7, 0, 0), kappa=0.05)
    t = np.linspace(0, 1, 11)[:, None]
    exact = np.exp(-(0.3 + 0.05 * np.pi**2) * t) * np.sin(np.pi * (X[None] - 0.7 * t))
    assert ok and rel(u, exact) < 1e-5


def test_constant_source_and_field_diffusion_closed_form():
    # u_t + 2 - (kappa(x) u_x)_x = 0 with u0 = const: exact u = u0 - 2 t (kappa field does nothing)
    kappa = 0.1 + 0.05 * np.sin(np.pi * X)
    u, ok = solve_one(np.full(N, 1.5), source=2.0, kappa=kappa)
    assert ok and np.allclose(u, 1.5 - 2 * np.linspace(0, 1, 11)[:, None], atol=1e-10)


def _moderate_members(seed, count):
    """Family members that stay bounded and are resolved on this coarse grid (kappa >= 0.02)."""
    rng = np.random.default_rng(seed)
    ps = [p for p in (sample_params(rng, X) for _ in range(60)) if p.kappa.min() >= 2e-2]
    args = [np.stack([getattr(p, k) for p in ps]) for k in ("u0", "c0", "c1", "source", "kappa")]
    _, ok = solve_periodic(*args, num_t=2, dt=1e-3, t_end=0.25)
    keep = np.flatnonzero(ok)[:count]
    assert len(keep) == count
    return [ps[i] for i in keep], [a[keep] for a in args]


def test_nonlinear_family_against_finer_step():
    _, args = _moderate_members(7, 4)
    coarse, ok = solve_periodic(*args, num_t=6, dt=5e-4, t_end=0.25)
    fine, ok_fine = solve_periodic(*args, num_t=6, dt=5e-5, t_end=0.25)
    assert ok.all() and ok_fine.all()
    for c, f in zip(coarse, fine, strict=True):
        assert rel(c, f) < 2e-3


def test_symbolic_solver_agrees_with_family_solver():
    ps, args = _moderate_members(11, 2)
    u, ok = solve_periodic(*args, num_t=6, dt=2.5e-4, t_end=0.25)
    for p, ref in zip(ps, u, strict=True):
        _, _, us = solve_symbolic(params_to_pde(p, X), num_t=6, dt=2.5e-4, t_end=0.25)
        assert rel(us, ref) < 1e-3  # same PDE, different discretisation of the stiff part and nonlinearity


def test_symbolic_solver_burgers_text_and_errors():
    pde = parse_pde("u_t + (0.5*u^2)_x - 0.05*u_xx = 0", "sin(pi*x)", x=X)
    t, x, u = solve_symbolic(pde, num_t=11)
    assert u.shape == (11, N) and np.allclose(u[0], np.sin(np.pi * X))
    assert np.abs(u[-1]).max() < 1.0  # viscous decay
    assert abs(u[-1].mean()) < 1e-10  # conservation form keeps the mean (zero here)
    with pytest.raises(UnsupportedPDE, match="u_t"):
        solve_symbolic(parse_pde("u_t*u + u_x = 0", "x", x=X))


def test_blow_up_is_flagged_and_checkerboard_detects_zigzag():
    _, ok = solve_one(np.full(N, 2.0), c0=(0, 0, -3.0), kappa=1e-2)  # u_t = 3 u^3 blows up before t = 1
    assert not ok
    smooth = np.sin(np.pi * X)[None, None].repeat(3, 1)
    zigzag = smooth + 0.2 * (-1.0) ** np.arange(N)
    assert list(checkerboard(np.concatenate([smooth, zigzag]))) == [False, True]


# ---- non-periodic finite-difference solver -------------------------------------------------------
XN = nonperiodic_grid(64)


def solve_fd(u0, bl, br, c0=(0, 0, 0), c1=(0, 0, 0), source=0.0, kappa=0.1, num_t=11, dt=1e-3, x=XN):
    u, ok = solve_nonperiodic(
        u0[None],
        np.array([c0], float),
        np.array([c1], float),
        np.broadcast_to(source, x.shape)[None],
        np.broadcast_to(kappa, x.shape)[None],
        np.array([bl], float),
        np.array([br], float),
        num_t=num_t,
        dt=dt,
    )
    return u[0], ok[0]


@pytest.mark.parametrize(
    ("kind", "mode", "bc"), [("dirichlet", np.sin, (1, 0, 0)), ("neumann", np.cos, (0, 1, 0))]
)
def test_heat_equation_closed_form(kind, mode, bc):
    # u_t - 0.1 u_xx = 0 with u = mode(pi (x + 1) / 2): exact decay exp(-0.1 pi^2 t / 4)
    profile = mode(np.pi * (XN + 1) / 2)
    u, ok = solve_fd(profile, bc, bc)
    exact = np.exp(-0.1 * np.pi**2 / 4 * np.linspace(0, 1, 11))[:, None] * profile[None]
    assert ok and rel(u, exact) < 1e-4


def test_robin_keeps_its_steady_linear_profile():
    a, b = np.cos(1.0), np.sin(1.0)
    profile = 0.5 * XN + 0.2  # u_xx = 0 and both Robin rows hold exactly
    u, ok = solve_fd(profile, (a, b, a * profile[0] + 0.5 * b), (a, b, a * profile[-1] + 0.5 * b))
    assert ok and np.abs(u - profile).max() < 1e-10


def test_nonlinear_robin_against_finer_step_and_grid():
    args = dict(
        bl=(1, 0, 0.3),
        br=(np.cos(2.0), np.sin(2.0), 0.1),
        c0=(0.5, -1.0, 0),
        c1=(0.3, 1.0, 0),
        source=0.5,
        kappa=0.05,
        num_t=6,
    )
    coarse, ok1 = solve_fd(np.sin(2 * XN) + 0.3, dt=4e-4, **args)
    fine, ok2 = solve_fd(np.sin(2 * XN) + 0.3, dt=5e-5, **args)
    x2 = nonperiodic_grid(127)  # every other point is a point of the 64-point grid
    finer_grid, ok3 = solve_fd(np.sin(2 * x2) + 0.3, dt=5e-5, x=x2, **args)
    assert ok1 and ok2 and ok3
    assert rel(coarse, fine) < 1e-4
    assert rel(fine, finer_grid[:, ::2]) < 3e-3  # second order in space
    # the boundary rows hold at every saved time
    h = XN[1] - XN[0]
    left = fine[:, 0]
    right_dx = (3 * fine[:, -1] - 4 * fine[:, -2] + fine[:, -3]) / (2 * h)
    assert np.allclose(left[1:], 0.3) and np.allclose(
        np.cos(2.0) * fine[1:, -1] + np.sin(2.0) * right_dx[1:], 0.1
    )


def test_robin_family_generation_and_graph(tmp_path):
    rng = np.random.default_rng(0)
    p = sample_params(rng, XN, periodic=False)
    assert p.bc_kinds[0] in ("dirichlet", "neumann", "robin") and p.bc_left.shape == (3,)
    pde = params_to_pde(p, XN)
    assert not pde.periodic and len(pde.boundary) == 2
    with pytest.raises(UnsupportedPDE, match="periodic"):
        solve_symbolic(pde)


def test_torch_solver_equals_the_numpy_solver():
    from foundry.pde.data.torch_solver import solve_periodic_torch

    rng = np.random.default_rng(5)
    x = np.linspace(-1, 1, 32, endpoint=False)
    ps = [sample_params(rng, x, advection_share=0.2) for _ in range(16)]
    args = [np.stack([np.asarray(getattr(p, k)) for p in ps]) for k in ("u0", "c0", "c1", "source", "kappa")]
    a, ok_a = solve_periodic(*args, num_t=11, dt=1e-3)
    b, ok_b = solve_periodic_torch(*args, num_t=11, dt=1e-3)
    assert 0 < ok_a.sum() < len(ps)  # some blow up: the frozen-sample path is exercised too
    np.testing.assert_array_equal(ok_a, ok_b)
    np.testing.assert_allclose(b[ok_b], a[ok_a], atol=1e-10)
