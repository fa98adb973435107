"""The 2-D flow systems written as text are read back and solved by the project's solvers
(`reference_flows2d`): closed forms for incompressible Navier-Stokes (Taylor-Green) and for a
small-amplitude shallow-water standing wave, and the family builders' members read back exactly."""

import numpy as np
import pytest
import torch

from foundry.pde.data.ins2d import ins_pde, sample_ins
from foundry.pde.data.pde2d_builders import _values
from foundry.pde.data.reference2d import solve_reference2d
from foundry.pde.data.reference_flows2d import read_ins, read_swe
from foundry.pde.data.swe2d import sample_swe, swe_pde
from foundry.pde.data.symbolic_solver import UnsupportedPDE
from foundry.pde.graph.parser import parse_pde2d

NS = [
    "2*u_t - 0.02*(u_xx + u_yy) + 2*(u^2)_x + 2*(u*v)_y + 2*p_x = 0",
    "v_t - 0.01*(v_xx + v_yy) + (u*v)_x + (v^2)_y + p_y = 0",
    "u_x + v_y = 0",
]
SW = [
    "h_t + ((h + 0.5)*u)_x + ((h + 0.5)*v)_y = 0",
    "u_t - 0.002*(u_xx + u_yy) + u*u_x + v*u_y + 0.8*h_x = 0",
    "v_t - 0.002*(v_xx + v_yy) + u*v_x + v*v_y + 0.8*h_y = 0",
]


def test_taylor_green_velocity_and_pressure_match_the_closed_form():
    pde = parse_pde2d(
        NS, ["sin(2*pi*x)*cos(2*pi*y)", "-cos(2*pi*x)*sin(2*pi*y)"], unknowns="u,v,p", resolution=16
    )
    assert read_ins(pde)["nu"] == pytest.approx(0.01)
    t = np.linspace(0, 1, 5)[:, None, None]
    x, y = np.meshgrid(np.arange(16) / 16, np.arange(16) / 16, indexing="ij")
    decay = np.exp(-8 * np.pi**2 * 0.01 * t)
    exact = {
        0: np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y) * decay,
        2: 0.25 * (np.cos(4 * np.pi * x) + np.cos(4 * np.pi * y)) * decay**2,
    }
    for target, want in exact.items():
        got = solve_reference2d(pde, num_t=5, target=target)["u"]
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_small_shallow_water_standing_wave_matches_linear_theory():
    eps, depth, g = 1e-3, 0.5, 0.8
    eqs = [SW[0]] + [e.replace("0.002", "0") for e in SW[1:]]
    pde = parse_pde2d(eqs, [f"{eps}*cos(2*pi*x)", "0", "0"], unknowns="h,u,v", resolution=16)
    f = read_swe(pde)
    assert f["g"] == pytest.approx(g) and np.allclose(f["H"], depth) and f["a"] == [0.0, 0.0, 0.0]
    h = solve_reference2d(pde, num_t=5)["u"]
    t = np.linspace(0, 1, 5)[:, None, None]
    x = (np.arange(16) / 16)[None, :, None]
    want = eps * np.cos(2 * np.pi * x) * np.cos(2 * np.pi * np.sqrt(g * depth) * t)
    np.testing.assert_allclose(h, np.broadcast_to(want, h.shape), atol=0.03 * eps)


def test_family_members_are_read_back_exactly():
    gen = torch.Generator().manual_seed(0)
    p = sample_ins(gen, 4, 32)
    for b in range(4):
        f = read_ins(ins_pde(p, b, 16))
        assert f["nu"] == pytest.approx(float(p.nu[b]))
        np.testing.assert_allclose(f["s_u"], _values(p.s_u[b], 16), atol=1e-12)
    s = sample_swe(gen, 4, 32)
    for b in range(4):
        f = read_swe(swe_pde(s, b, 16))
        assert f["g"] == pytest.approx(float(s.g[b])) and np.allclose(f["a"], s.a[b].numpy())
        np.testing.assert_allclose(f["H"], _values(s.H[b], 16), atol=1e-12)


@pytest.mark.parametrize(
    ("eqs", "names", "message"),
    [
        ([NS[0], NS[1].replace("(u*v)_x", "(v*u)_x"), NS[2]], "u,v,p", "dx(mul(u, v))"),
        ([NS[0] + " + u^3", NS[1], NS[2]], "u,v,p", "outside the form"),
        ([NS[0], NS[1], "u_x + 2*v_y = 0"], "u,v,p", "constraint"),
        ([SW[0].replace("((h + 0.5)*v)_y", "((h + 0.7)*v)_y"), SW[1], SW[2]], "h,u,v", "one base height"),
        ([SW[0], SW[1].replace("0.8*h_x", "0.5*h_x"), SW[2]], "h,u,v", "one gravity"),
    ],
)
def test_terms_outside_the_flow_forms_are_named(eqs, names, message):
    ics = ["sin(2*pi*y)", "0"] + (["0"] if names.startswith("h") else [])
    if names.startswith("h"):
        ics[0] = "1 + 0.1*sin(2*pi*y)"
    pde = parse_pde2d(eqs, ics, unknowns=names, resolution=8)
    with pytest.raises(UnsupportedPDE, match=message.replace("(", r"\(").replace(")", r"\)")):
        solve_reference2d(pde, num_t=3)
