"""Shallow-water equations with bathymetry (`foundry.pde.data.swe2d`): solver, sampler, PDE builder."""

import math

import numpy as np
import torch

from foundry.pde.data.spectral2d import grid
from foundry.pde.data.swe2d import SWEBatch, sample_swe, solve_swe, swe_pde
from foundry.pde.graph.dag import GraphSizes, build_graph
from foundry.pde.graph.parser import parse_pde2d

SIZES = GraphSizes.for_dim(2)


def _solve(p: SWEBatch, **kw):
    return solve_swe(p.h0, p.u0, p.v0, p.H, p.g, p.a, **kw)


def test_small_standing_wave_matches_the_linearised_solution():
    """h = hm + eps cos(2 pi x) on a flat bottom H: the damped linear gravity wave, up to O(eps^2)."""
    n, eps, hm, base, g = 16, 1e-3, 0.3, 0.7, 0.8
    x, _ = grid(n)
    h0 = (hm + eps * torch.cos(2 * math.pi * x))[None]
    zero = torch.zeros_like(h0)
    a = torch.tensor([[2e-3, 3e-3, 1e-3]], dtype=torch.float64)
    huv, ok = solve_swe(h0, zero, zero, torch.full_like(h0, base), torch.tensor([g]), a, num_t=6, dt=2e-3)
    assert ok.all()
    k, depth = 2 * math.pi, hm + base
    for i, t in enumerate(np.linspace(0.0, 1.0, 6)):
        mat = torch.tensor([[-a[0, 0] * k**2, -depth * k], [g * k, -a[0, 1] * k**2]], dtype=torch.float64)
        amp_h, amp_u = torch.linalg.matrix_exp(mat * t) @ torch.tensor([eps, 0.0], dtype=torch.float64)
        torch.testing.assert_close(huv[0, i, 0], hm + amp_h * torch.cos(k * x), atol=1e-2 * eps, rtol=0)
        torch.testing.assert_close(huv[0, i, 1], amp_u * torch.sin(k * x), atol=1e-2 * eps, rtol=0)
        torch.testing.assert_close(huv[0, i, 2], torch.zeros_like(x), atol=1e-12, rtol=0)


def test_mass_is_conserved_and_members_are_positive():
    p = sample_swe(torch.Generator().manual_seed(3), 4, 16)
    assert (p.h0 > 0).all() and (p.H >= 0).all() and (p.a >= 1e-3).all() and (p.a <= 1e-2).all()
    huv, ok = _solve(p, num_t=5, t_end=0.4, dt=4e-3)
    assert ok.all()
    mass = huv[:, :, 0].mean(dim=(-2, -1))
    torch.testing.assert_close(mass, mass[:, :1].expand_as(mass), atol=1e-14, rtol=0)


def test_second_order_in_dt():
    p = sample_swe(torch.Generator().manual_seed(5), 1, 16)
    p.u0, p.v0 = 0.3 * p.h0.flip(-1) - 0.3 * p.h0.mean(), 0.3 * p.h0.flip(-2) - 0.3 * p.h0.mean()
    ref, _ = _solve(p, num_t=2, t_end=0.2, dt=0.2 / 512)
    errs = [
        float((_solve(p, num_t=2, t_end=0.2, dt=0.2 / m)[0][:, -1] - ref[:, -1]).norm()) for m in (32, 64)
    ]
    assert 3.0 < errs[0] / errs[1] < 5.0, errs


def test_a_blow_up_does_not_touch_the_other_member():
    p = sample_swe(torch.Generator().manual_seed(7), 2, 16)
    p.u0[1] = 8.0 * torch.sign(p.u0[1] + 1e-3)  # a discontinuous, fast jet: leaves U_MAX / dries out
    p.a[1] = 1e-3
    huv, ok = _solve(p, num_t=3, t_end=0.4, dt=0.02)
    assert ok.tolist() == [True, False]
    alone, ok0 = _solve(
        SWEBatch(*(v[:1] for v in (p.h0, p.u0, p.v0, p.H, p.g, p.a))), num_t=3, t_end=0.4, dt=0.02
    )
    assert ok0.all()
    torch.testing.assert_close(huv[:1], alone, atol=1e-13, rtol=0)
    assert torch.isfinite(huv).all()


def _text_batch(base: str | None, resolution: int) -> tuple[SWEBatch, list[str], list[str]]:
    """A one-member batch on the 2G grid and the text of the same member."""
    n = 2 * resolution
    x, y = grid(n)
    h0 = 1 + 0.1 * torch.cos(2 * math.pi * x) * torch.sin(2 * math.pi * y)
    u0 = 0.05 * torch.sin(2 * math.pi * y)
    H = 0.2 * torch.sin(2 * math.pi * x) + 0.3 if base is not None else torch.zeros_like(x)
    a, g = [0.002, 0.005, 0.0075], 0.6
    p = SWEBatch(
        h0[None], u0[None], torch.zeros_like(u0)[None], H[None], torch.tensor([g]), torch.tensor([a])
    )
    dep = f"(h + ({base}))" if base is not None else "h"
    eqs = [
        f"h_t - {a[0]!r}*(h_xx + h_yy) + ({dep}*u)_x + ({dep}*v)_y = 0",
        f"u_t - {a[1]!r}*(u_xx + u_yy) + u*u_x + v*u_y + {g!r}*h_x = 0",
        f"v_t - {a[2]!r}*(v_xx + v_yy) + u*v_x + v*v_y + {g!r}*h_y = 0",
    ]
    ics = ["1 + 0.1*cos(2*pi*x)*sin(2*pi*y)", "0.05*sin(2*pi*y)", "0"]
    return p, eqs, ics


def test_builder_graph_equals_the_parsed_text():
    res = 16
    for base in (None, "0.2*sin(2*pi*x) + 0.3"):
        p, eqs, ics = _text_batch(base, res)
        built = build_graph(swe_pde(p, 0, res), 3, SIZES)
        text = build_graph(parse_pde2d(eqs, ics, unknowns="h,u,v", resolution=res), 3, SIZES)
        for key in ("node_type", "node_scalar", "spatial_pos", "in_degree", "out_degree", "attn_mask"):
            np.testing.assert_array_equal(getattr(built, key), getattr(text, key), err_msg=key)
        np.testing.assert_allclose(built.function_values, text.function_values, atol=1e-6)
        n_cf = 2 if base is not None else 0
        assert int((np.abs(built.function_values).sum(axis=(1, 2)) > 0).sum()) == 3 + n_cf
