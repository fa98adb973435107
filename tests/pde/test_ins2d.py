"""Periodic incompressible Navier-Stokes (`foundry.pde.data.ins2d`): closed forms, convergence, blow-ups
and the symbolic PDE of a member (the same graph as the parsed text)."""

from __future__ import annotations

import math

import numpy as np
import torch

from foundry.pde.data.ins2d import INSBatch, ins_pde, sample_ins, solve_ins, velocity_from_stream
from foundry.pde.data.spectral2d import grid, wavenumbers
from foundry.pde.graph.dag import NODE_TYPES, GraphSizes, build_graph
from foundry.pde.graph.parser import parse_pde2d

NUM_MOD = 3
SIZES = GraphSizes.for_dim(2)


def _div(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    n = u.shape[-1]
    kx, ky = wavenumbers(n)
    return torch.fft.irfft2(1j * kx * torch.fft.rfft2(u) + 1j * ky * torch.fft.rfft2(v), s=(n, n))


def test_taylor_green_velocity_and_pressure():
    n, nu, k = 16, 0.01, 2 * math.pi
    x, y = grid(n)
    u0, v0 = torch.sin(k * x) * torch.cos(k * y), -torch.cos(k * x) * torch.sin(k * y)
    uvp, ok = solve_ins(
        u0[None], v0[None], torch.tensor([nu], dtype=torch.float64), num_t=5, dt=2.5e-3, t_end=0.4
    )
    assert ok.all()
    for i, t in enumerate(np.linspace(0.0, 0.4, 5)):
        f = math.exp(-2 * nu * k**2 * t)
        p = f**2 / 4 * (torch.cos(2 * k * x) + torch.cos(2 * k * y))
        for got, want in zip(uvp[0, i], (f * u0, f * v0, p), strict=True):
            torch.testing.assert_close(got, want, atol=5e-6, rtol=0)


def test_random_member_divergence_free_and_second_order_in_dt():
    gen = torch.Generator().manual_seed(3)
    p = sample_ins(gen, 1, 16)
    p.s_u, p.s_v = (
        0.5 * torch.sin(2 * math.pi * grid(16)[1])[None],
        0.3 * torch.cos(2 * math.pi * grid(16)[0])[None],
    )
    args = (p.u0, p.v0, p.nu, p.s_u, p.s_v)
    ref, _ = solve_ins(*args, num_t=2, dt=6.25e-4, t_end=0.2)
    errs = []
    for dt in (0.01, 0.005):
        out, ok = solve_ins(*args, num_t=2, dt=dt, t_end=0.2)
        assert ok.all()
        errs.append((out[0, -1] - ref[0, -1]).norm() / ref[0, -1].norm())
    assert 3.5 < errs[0] / errs[1] < 4.5, errs
    assert _div(ref[0, -1, 0], ref[0, -1, 1]).abs().max() < 1e-10
    assert _div(ref[0, 0, 0], ref[0, 0, 1]).abs().max() < 1e-10  # the initial velocity too
    assert ref[0, -1, 2].mean().abs() < 1e-12  # p of zero mean


def test_initial_velocity_is_projected():
    n = 16
    x, y = grid(n)
    u0 = torch.sin(2 * math.pi * x)[None]  # div != 0: the projection removes it entirely
    uvp, _ = solve_ins(
        u0, torch.zeros_like(u0), torch.tensor([0.01], dtype=torch.float64), num_t=2, dt=0.05, t_end=0.1
    )
    assert uvp[0, :, :2].abs().max() < 1e-12


def test_blow_up_leaves_the_other_member_alone():
    gen = torch.Generator().manual_seed(0)
    p = sample_ins(gen, 2, 16)
    p.u0[1] *= 40.0  # explicit advection far past its step limit at dt = 0.02
    p.v0[1] *= 40.0
    args = (p.u0, p.v0, p.nu, p.s_u, p.s_v)
    out, ok = solve_ins(*args, num_t=6, dt=0.02, t_end=0.5)
    assert ok.tolist() == [True, False]
    alone, _ = solve_ins(*(a[:1] for a in args), num_t=6, dt=0.02, t_end=0.5)
    torch.testing.assert_close(out[:1], alone, rtol=0, atol=0)
    assert torch.isfinite(out).all()
    last = out[1, -1]
    assert (out[1, -2] == last).all()  # repeats its last good frame


def test_kolmogorov_laminar_flow():
    """s_u = -F sin(2 pi k y): u = U (1 - exp(-nu (2 pi k)^2 t)) sin(2 pi k y), U = F / (nu (2 pi k)^2)."""
    n, nu, kk, f_amp = 16, 0.05, 2, 0.5
    x, y = grid(n)
    lam = nu * (2 * math.pi * kk) ** 2
    big_u = f_amp / lam
    s_u = (-f_amp * torch.sin(2 * math.pi * kk * y))[None]
    zero = torch.zeros_like(s_u)
    uvp, ok = solve_ins(
        zero, zero, torch.tensor([nu], dtype=torch.float64), s_u, zero, num_t=5, dt=5e-3, t_end=2.0
    )
    assert ok.all()
    for i, t in enumerate(np.linspace(0.0, 2.0, 5)):
        want = big_u * (1 - math.exp(-lam * t)) * torch.sin(2 * math.pi * kk * y)
        torch.testing.assert_close(uvp[0, i, 0], want, atol=2e-5 * big_u, rtol=0)
    assert uvp[0, :, 1:].abs().max() < 1e-12  # v = 0 and p = 0 (s_u is divergence-free)
    # the steady state is held
    held, _ = solve_ins(
        big_u * torch.sin(2 * math.pi * kk * y)[None],
        zero,
        torch.tensor([nu], dtype=torch.float64),
        s_u,
        zero,
        num_t=3,
        dt=0.05,
        t_end=1.0,
    )
    torch.testing.assert_close(held[0, -1, 0], held[0, 0, 0], atol=1e-12, rtol=0)


def test_sampler_shapes_and_divergence_free_start():
    gen = torch.Generator().manual_seed(1)
    p = sample_ins(gen, 6, 16)
    assert p.u0.shape == p.s_u.shape == (6, 16, 16) and p.nu.shape == (6,)
    assert ((p.nu >= 2e-3) & (p.nu <= 2e-2)).all()
    speed = torch.maximum(p.u0.abs().amax(dim=(1, 2)), p.v0.abs().amax(dim=(1, 2)))
    torch.testing.assert_close(speed, torch.ones(6, dtype=torch.float64))
    assert _div(p.u0, p.v0).abs().max() < 1e-10


def _member(n: int, nu: float, forcing: bool) -> INSBatch:
    x, y = grid(n)
    u0, v0 = velocity_from_stream((torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * y))[None])
    s_u = (0.5 * torch.sin(2 * math.pi * y))[None] if forcing else torch.zeros(1, n, n, dtype=torch.float64)
    return INSBatch(u0, v0, torch.tensor([nu], dtype=torch.float64), s_u, torch.zeros_like(s_u))


def test_builder_gives_the_parsed_texts_graph():
    g = 8
    eqs = [
        "u_t - 0.01*(u_xx + u_yy) + (u^2)_x + (u*v)_y + p_x = 0",
        "v_t - 0.01*(v_xx + v_yy) + (u*v)_x + (v^2)_y + p_y = 0",
        "u_x + v_y = 0",
    ]
    # psi = sin(2 pi x) cos(2 pi y): u = psi_y, v = -psi_x
    ics = ["-2*pi*sin(2*pi*x)*sin(2*pi*y)", "-2*pi*cos(2*pi*x)*cos(2*pi*y)"]
    text = parse_pde2d(eqs, ics, unknowns="u,v,p", resolution=g)
    built = ins_pde(_member(2 * g, 0.01, False), 0, resolution=g)
    a, b = build_graph(text, NUM_MOD, SIZES), build_graph(built, NUM_MOD, SIZES)
    for key in ("node_type", "node_scalar", "spatial_pos", "in_degree", "out_degree", "attn_mask"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_allclose(a.function_values, b.function_values, atol=1e-5)
    types = [NODE_TYPES[t] for t in b.node_type if t]
    assert len(types) == 54 and types.count("ic") == 2 and types.count("eq0") == 3

    # with forcing: the field is one cf node, last term of the u equation
    eqs[0] = eqs[0].replace(" = 0", " + 0.5*sin(2*pi*y) = 0")
    text = parse_pde2d(eqs, ics, unknowns="u,v,p", resolution=g)
    built = ins_pde(_member(2 * g, 0.01, True), 0, resolution=g)
    a, b = build_graph(text, NUM_MOD, SIZES), build_graph(built, NUM_MOD, SIZES)
    for key in ("node_type", "node_scalar", "spatial_pos"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_allclose(a.function_values, b.function_values, atol=1e-5)


def test_pressure_has_no_initial_condition():
    gen = torch.Generator().manual_seed(2)
    p = sample_ins(gen, 2, 16)
    for b in range(2):
        pde = ins_pde(p, b, resolution=8)
        assert [u.value for u in pde.unknowns] == ["u", "v", "p"]
        assert sorted(pde.initial) == [0, 1] and pde.evolved == [True, True, False]
        graph = build_graph(pde, NUM_MOD, SIZES)
        types = [NODE_TYPES[t] for t in graph.node_type if t]
        assert types.count("ic") == 2 and types.count("uf") == 3
