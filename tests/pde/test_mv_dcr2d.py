"""MV-DCR solver: reduction to the scalar solver, decoupling, a closed form, dt refinement, batching."""

import math

import pytest
import scipy.linalg
import torch

from foundry.pde.data.mv_dcr2d import MVDCRBatch, pairs, sample_mv_dcr, solve_mv_dcr, solve_mv_dcr_refining
from foundry.pde.data.spectral2d import grid, solve_dcr

N = 16
X, Y = grid(N)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def zeros(*shape):
    return torch.zeros(*shape, dtype=torch.float64)


def solve(p: MVDCRBatch, **kw):
    return solve_mv_dcr(p.u0, p.a, p.lin, p.flux_x, p.flux_y, p.q0, p.qx, p.qy, p.source, **kw)


def full(v):  # [1, 1, 1] in float64: a float32 0.7 is off by 1e-8, which the exact tests would see
    return torch.full((1, 1, 1), v, dtype=torch.float64)


def test_one_component_equals_the_scalar_solver():
    p = sample_mv_dcr(torch.Generator().manual_seed(3), 1, N, k=1)
    p.q0, p.qx, p.qy = full(0.7), full(-0.4), full(0.3)
    p.lin, p.flux_x, p.flux_y = full(0.5), full(0.6), full(-0.2)
    u, ok = solve(p, num_t=11, t_end=0.2, dt=1e-3)
    c0 = torch.tensor([[0.5, 0.7, 0.0]], dtype=torch.float64)
    c1 = torch.tensor([[0.6, -0.4, 0.0]], dtype=torch.float64)
    c2 = torch.tensor([[-0.2, 0.3, 0.0]], dtype=torch.float64)
    ref, ok_ref = solve_dcr(p.u0[:, 0], p.a[:, 0], c0, c1, c2, p.source[:, 0], num_t=11, t_end=0.2, dt=1e-3)
    assert ok.item() and ok_ref.item()
    assert rel(u[:, :, 0], ref) < 1e-12


def test_decoupled_system_equals_two_scalar_solves():
    p = sample_mv_dcr(torch.Generator().manual_seed(4), 1, N, k=2)
    p.lin = torch.diag_embed(torch.tensor([[0.3, -0.5]], dtype=torch.float64))
    p.flux_x = torch.diag_embed(torch.tensor([[0.5, 0.0]], dtype=torch.float64))
    p.flux_y = torch.diag_embed(torch.tensor([[0.0, -0.25]], dtype=torch.float64))
    # pairs(2) = (0,0), (0,1), (1,1): only u0^2 in equation 0 and u1^2 in equation 1
    p.q0 = torch.tensor([[[0.8, 0.0, 0.0], [0.0, 0.0, -0.6]]], dtype=torch.float64)
    p.qx = torch.tensor([[[0.4, 0.0, 0.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    p.qy = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.5]]], dtype=torch.float64)
    u, ok = solve(p, num_t=11, t_end=0.2, dt=1e-3)
    assert ok.item()
    for k in range(2):
        c0 = torch.tensor([[p.lin[0, k, k], p.q0[0, k, 2 * k], 0.0]], dtype=torch.float64)
        c1 = torch.tensor([[p.flux_x[0, k, k], p.qx[0, k, 2 * k], 0.0]], dtype=torch.float64)
        c2 = torch.tensor([[p.flux_y[0, k, k], p.qy[0, k, 2 * k], 0.0]], dtype=torch.float64)
        ref, _ = solve_dcr(p.u0[:, k], p.a[:, k], c0, c1, c2, p.source[:, k], num_t=11, t_end=0.2, dt=1e-3)
        assert rel(u[:, :, k], ref) < 1e-12


def test_linear_coupled_fourier_mode_matches_the_matrix_exponential():
    # one mode exp(i k.x), k = 2 pi (1, 2): the amplitude vector obeys v' = L v, L = -diag(a)|k|^2 - C - i k.B
    k3 = 3
    a = torch.tensor([[0.01, 0.005, 0.002]], dtype=torch.float64)
    lin = torch.tensor([[[0.2, -0.5, 0.1], [0.4, 0.0, -0.3], [0.0, 0.6, 0.1]]], dtype=torch.float64)
    fx = torch.tensor([[[0.0, 0.3, 0.0], [0.3, 0.1, 0.2], [0.0, 0.2, 0.0]]], dtype=torch.float64)
    fy = torch.tensor([[[0.2, 0.0, -0.1], [0.0, 0.0, 0.0], [-0.1, 0.0, -0.3]]], dtype=torch.float64)
    kvec = 2 * math.pi * torch.tensor([1.0, 2.0], dtype=torch.float64)
    op = (-torch.diag(a[0]) * kvec.pow(2).sum() - lin[0] - 1j * (kvec[0] * fx[0] + kvec[1] * fy[0])).numpy()
    v0 = torch.tensor([1.0 + 0.5j, -0.3j, 0.7], dtype=torch.complex128)
    phase = torch.exp(1j * (kvec[0] * X + kvec[1] * Y))
    u0 = (v0[:, None, None] * phase).real[None]
    q = zeros(1, k3, len(pairs(k3)))
    num_t, t_end = 11, 0.5
    u, ok = solve_mv_dcr(u0, a, lin, fx, fy, q, q, q, num_t=num_t, t_end=t_end, dt=5e-4)
    ts = torch.linspace(0, t_end, num_t, dtype=torch.float64)
    exact = torch.stack(
        [((torch.from_numpy(scipy.linalg.expm(op * t.item())) @ v0)[:, None, None] * phase).real for t in ts]
    )
    assert ok.item() and rel(u[0], exact) < 2e-5


def nonlinear_k2():
    p = sample_mv_dcr(torch.Generator().manual_seed(0), 1, N, k=2)
    p.a = torch.tensor([[0.01, 0.005]], dtype=torch.float64)
    p.lin = torch.tensor([[[0.3, -0.8], [0.6, 0.1]]], dtype=torch.float64)
    p.flux_x = torch.tensor([[[0.2, 0.4], [0.4, 0.0]]], dtype=torch.float64)
    p.flux_y = torch.tensor([[[0.0, 0.0], [0.0, -0.3]]], dtype=torch.float64)
    p.q0 = torch.tensor([[[0.5, -0.7, 0.0], [0.0, 0.6, 0.3]]], dtype=torch.float64)
    p.qx = torch.tensor([[[0.0, 0.3, 0.0], [-0.4, 0.0, 0.0]]], dtype=torch.float64)
    p.qy = torch.tensor([[[0.2, 0.0, 0.0], [0.0, 0.0, 0.5]]], dtype=torch.float64)
    return p


def test_error_falls_about_four_times_per_halving_of_dt():
    p = nonlinear_k2()
    kw = dict(num_t=6, t_end=0.25)
    ref, ok = solve(p, dt=6.25e-4 / 8, **kw)
    errs = [rel(solve(p, dt=dt, **kw)[0], ref) for dt in (2.5e-3, 1.25e-3, 6.25e-4)]
    assert ok.item()
    for coarse, fine in zip(errs, errs[1:], strict=False):
        assert 3.5 < coarse / fine < 4.8, errs


def test_batch_equals_samples_solved_alone():
    p = sample_mv_dcr(torch.Generator().manual_seed(5), 3, N, k=3)
    kw = dict(num_t=6, t_end=0.1, dt=2e-3)
    u, ok = solve(p, **kw)
    for b in range(3):
        one = MVDCRBatch(*(getattr(p, f)[b : b + 1] for f in MVDCRBatch.__dataclass_fields__))
        ub, okb = solve(one, **kw)
        assert torch.equal(ok[b : b + 1], okb)
        assert (u[b] - ub[0]).abs().max().item() < 1e-12


def test_blow_up_is_flagged_and_does_not_touch_the_other_sample():
    p = sample_mv_dcr(torch.Generator().manual_seed(6), 2, N, k=2)
    p.q0 = zeros(2, 2, 3)
    p.qx, p.qy = zeros(2, 2, 3), zeros(2, 2, 3)
    p.q0[0, 0, 0] = -5.0  # u_t = 5 u^2 + ...: blows up from u ~ 1 before t ~ 0.2
    p.u0[0] = p.u0[0].abs() + 1.0
    u, ok = solve(p, num_t=11, t_end=1.0, dt=1e-3)
    alone, ok1 = solve(
        MVDCRBatch(*(getattr(p, f)[1:] for f in MVDCRBatch.__dataclass_fields__)),
        num_t=11,
        t_end=1.0,
        dt=1e-3,
    )
    assert not ok[0] and torch.isfinite(u).all()
    assert torch.equal(ok[1:], ok1) and (u[1] - alone[0]).abs().max().item() < 1e-12


def test_sampler_shapes_seeding_and_symmetric_fluxes():
    p = sample_mv_dcr(torch.Generator().manual_seed(1), 16, N, k=4)
    q = sample_mv_dcr(torch.Generator().manual_seed(1), 16, N, k=4)
    assert p.u0.shape == p.source.shape == (16, 4, N, N) and p.q0.shape == (16, 4, 10)
    assert torch.equal(p.u0, q.u0) and torch.equal(p.qx, q.qx)
    assert torch.equal(p.flux_x, p.flux_x.transpose(1, 2)) and torch.equal(p.flux_y, p.flux_y.transpose(1, 2))
    assert p.lin.abs().max() <= 1 and (p.a >= 1e-3).all() and (p.a <= 1e-2).all()
    with pytest.raises(ValueError):
        sample_mv_dcr(torch.Generator(), 1, N, k=5)


def test_sampled_quadratic_fluxes_have_symmetric_jacobians():
    # g = grad Phi: dg_k/du_l = sum_p qx[k, p] dP_p/du_l must be symmetric in (k, l) at any u
    p = sample_mv_dcr(torch.Generator().manual_seed(2), 32, N, k=4)
    u = torch.randn(4, dtype=torch.float64, requires_grad=True)
    prods = torch.stack([u[i] * u[j] for i, j in pairs(4)])
    dprod = torch.stack([torch.autograd.grad(prods[q], u, retain_graph=True)[0] for q in range(len(prods))])
    for q in (p.qx, p.qy):
        jac = q @ dprod  # [B, K, K]
        assert torch.allclose(jac, jac.transpose(1, 2), atol=1e-14) and q.abs().max() <= 1
    assert (p.qx != 0).any() and (p.qx == 0).any()


def test_refining_re_solves_only_failed_members_at_the_smaller_dt():
    # these K = 4 draws at 16^2: three exceed the explicit step limit at dt = 0.02, one does not
    p = sample_mv_dcr(torch.Generator().manual_seed(0), 4, N, k=4)
    kw = dict(num_t=3, t_end=0.2)
    u, ok, dt = solve_mv_dcr_refining(p, dts=(2e-2, 2.5e-3), **kw)
    assert ok.all() and dt.tolist() == [2.5e-3, 2.5e-3, 2.5e-3, 2e-2]
    for b in range(4):
        one = MVDCRBatch(*(getattr(p, f)[b : b + 1] for f in MVDCRBatch.__dataclass_fields__))
        alone, _ = solve(one, dt=dt[b].item(), **kw)
        assert (u[b] - alone[0]).abs().max().item() < 1e-12
