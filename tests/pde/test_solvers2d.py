"""2D periodic solvers against closed forms, refinement in dt and n, batching and blow-up handling."""

import math

import pytest
import torch

from foundry.pde.data.fields2d import grf, sine_sum
from foundry.pde.data.spectral2d import U_MAX, grid, solve_dcr, solve_dcr_refining, solve_wave

N = 32
X, Y = grid(N)
ZERO = torch.zeros(1, 3, dtype=torch.float64)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def times(num_t, t_end=1.0):
    return torch.linspace(0, t_end, num_t, dtype=torch.float64)[:, None, None]


def coefs(*c):
    return torch.tensor([c], dtype=torch.float64)


def vec(*v):  # float64: a float32 0.7 is off by 1e-8, which the exact tests would see
    return torch.tensor(v, dtype=torch.float64)


def test_diffusion_of_a_fourier_mode_decays_exactly():
    # u_t = a Δu, u0 = sin(2 pi (x + 2 y)): u = exp(-a |k|^2 t) u0, |k|^2 = 20 pi^2
    u0 = torch.sin(2 * math.pi * (X + 2 * Y))
    u, ok = solve_dcr(u0[None], vec(0.01), ZERO, ZERO, ZERO, dt=1e-3)
    exact = torch.exp(-0.01 * 20 * math.pi**2 * times(101)) * u0
    assert ok.item() and rel(u[0], exact) < 1e-5


def test_constant_flux_advects_by_an_exact_shift():
    # u_t + (0.5 u)_x + (0.25 u)_y = 0: u(t, x, y) = u0(x - 0.5 t, y - 0.25 t)
    u0 = torch.sin(2 * math.pi * (X + Y))
    u, ok = solve_dcr(u0[None], vec(0.0), ZERO, coefs(0.5, 0, 0), coefs(0.25, 0, 0), dt=5e-4)
    t = times(101)
    exact = torch.sin(2 * math.pi * ((X - 0.5 * t) + (Y - 0.25 * t)))
    assert ok.item() and rel(u[0], exact) < 5e-5


def test_cubic_reaction_on_a_constant_field():
    # u_t + 1.5 u^3 = 0 (explicit, dealiased path): u = u0 / sqrt(1 + 3 u0^2 t)
    u, ok = solve_dcr(
        torch.full((1, N, N), 0.8, dtype=torch.float64), vec(0.005), coefs(0, 0, 1.5), ZERO, ZERO, dt=1e-3
    )
    exact = (0.8 / torch.sqrt(1 + 3 * 0.64 * times(101))).expand(101, N, N)
    assert ok.item() and rel(u[0], exact) < 1e-5


def test_linear_wave_of_single_modes_is_exact():
    # u_tt = c2 Δu: each mode is u0 cos(w t) + v0 sin(w t) / w with w = sqrt(c2) |k|
    u0 = torch.cos(2 * math.pi * X) * torch.sin(4 * math.pi * Y)  # |k|^2 = 20 pi^2
    v0 = torch.sin(2 * math.pi * (X - Y))  # |k|^2 = 8 pi^2
    c2 = 2.0
    w1, w2 = math.sqrt(c2 * 20) * math.pi, math.sqrt(c2 * 8) * math.pi
    u, ok = solve_wave(u0[None], v0[None], vec(c2))
    t = times(101)
    exact = u0 * torch.cos(w1 * t) + v0 * torch.sin(w2 * t) / w2
    assert ok.item() and rel(u[0], exact) < 1e-12


def test_damped_wave_with_a_source_mean_mode():
    # spatially constant: u'' + mu u' + s = 0, u(0) = 0, u'(0) = 1: u = (1 + s/mu)(1 - e^{-mu t})/mu - s t/mu
    mu, s = 0.7, 0.3
    u, ok = solve_wave(
        torch.zeros(1, N, N),
        torch.ones(1, N, N),
        vec(1.0),
        vec(mu),
        torch.full((1, N, N), s, dtype=torch.float64),
    )
    t = times(101)
    exact = ((1 + s / mu) * (1 - torch.exp(-mu * t)) / mu - s * t / mu).expand(101, N, N)
    assert ok.item() and (u[0] - exact).abs().max().item() < 1e-12


def nonlinear_case(n, batch=1, seed=3):
    """A smooth nonlinear DCR member: every term of the family is present."""
    u0 = sine_sum(torch.Generator().manual_seed(seed), batch, n, num_terms=4, max_freq=2)
    x, y = grid(n)
    source = (0.2 * torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * y)).expand(batch, n, n)
    c0, c1, c2 = (coefs(*c).expand(batch, 3) for c in ((0.5, -0.5, 0.3), (0.3, 0.5, -0.2), (-0.4, 0.2, 0.3)))
    return u0, torch.full((batch,), 0.01, dtype=torch.float64), c0, c1, c2, source


def test_sbdf2_is_second_order_in_time():
    kw = {"num_t": 6, "t_end": 0.5}
    ref, _ = solve_dcr(*nonlinear_case(16), dt=0.1 / 320, **kw)
    errs = [rel(solve_dcr(*nonlinear_case(16), dt=0.1 / m, **kw)[0], ref) for m in (10, 20, 40)]
    ratios = [errs[i] / errs[i + 1] for i in range(2)]
    assert errs[0] < 5e-3 and all(3.5 < r < 4.8 for r in ratios), (errs, ratios)


def test_error_falls_spectrally_with_resolution():
    kw = {"num_t": 6, "t_end": 0.5, "dt": 2.5e-3}
    ref, _ = solve_dcr(*nonlinear_case(64), **kw)
    errs = [rel(solve_dcr(*nonlinear_case(n), **kw)[0], ref[..., :: 64 // n, :: 64 // n]) for n in (16, 32)]
    assert errs[0] < 3e-2 and errs[1] < errs[0] / 20, errs


def test_batch_equals_samples_solved_alone():
    args = list(nonlinear_case(16, batch=3, seed=5))
    args[1] = torch.tensor([0.01, 0.003, 0.006], dtype=torch.float64)
    together, ok = solve_dcr(*args, num_t=6, t_end=0.5, dt=5e-3)
    for b in range(3):
        alone, ok_b = solve_dcr(*(a[b : b + 1] for a in args), num_t=6, t_end=0.5, dt=5e-3)
        assert ok[b] == ok_b[0]
        torch.testing.assert_close(together[b], alone[0], rtol=0, atol=1e-12)


def test_blow_up_is_flagged_and_kept_away_from_the_others():
    u0, a, c0, c1, c2, source = nonlinear_case(16, batch=2, seed=5)
    c0 = c0.clone()
    u0 = u0.clone()
    u0[1] = 2.0
    c0[1] = torch.tensor([0, 0, -3.0], dtype=torch.float64)  # u_t = 3 u^3 from u = 2 blows up at t = 1/24
    u, ok = solve_dcr(u0, a, c0, c1, c2, source, num_t=11, dt=1e-3)
    alone, _ = solve_dcr(u0[:1], a[:1], c0[:1], c1[:1], c2[:1], source[:1], num_t=11, dt=1e-3)
    assert ok.tolist() == [True, False]
    assert torch.isfinite(u).all() and u[1].abs().max() <= U_MAX
    torch.testing.assert_close(u[0], alone[0], rtol=0, atol=1e-12)


def test_refining_retries_only_the_failed_samples_at_smaller_steps():
    # Burgers-like f1 = f2 = u^2 on 16^2, a = 0.02: amplitude 1 is stable at dt = 1e-2, amplitude 2 needs
    # 5e-3 (explicit step limit), and u_t = 3 u^3 from u = 2 blows up at any step
    x, y = grid(16)
    mode = torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * y)
    u0 = torch.stack([mode, 2 * mode, torch.full_like(mode, 2.0)])
    burgers = coefs(0, 1, 0).expand(3, 3).clone()
    burgers[2] = 0.0
    c0 = torch.zeros(3, 3, dtype=torch.float64)
    c0[2, 2] = -3.0
    args = (u0, vec(0.02, 0.02, 0.02), c0, burgers, burgers)
    u, ok, dt = solve_dcr_refining(*args, dts=(1e-2, 5e-3), num_t=11)
    assert ok.tolist() == [True, True, False] and dt.tolist() == [1e-2, 5e-3, 5e-3]
    direct, _ = solve_dcr(*(v[1:2] for v in args), dt=5e-3, num_t=11)
    torch.testing.assert_close(u[1], direct[0], rtol=0, atol=1e-12)


def test_grf_statistics_and_seeding():
    f = grf(torch.Generator().manual_seed(0), 256, 32, alpha=2.5, tau=7.0, sigma=0.7)
    g = grf(torch.Generator().manual_seed(0), 256, 32, alpha=2.5, tau=7.0, sigma=0.7)
    assert f.shape == (256, 32, 32) and torch.equal(f, g)
    assert f.std().item() == pytest.approx(0.7, rel=0.05)


def test_sine_sum_is_the_same_function_on_every_grid():
    coarse = sine_sum(torch.Generator().manual_seed(1), 4, 16)
    fine = sine_sum(torch.Generator().manual_seed(1), 4, 32)
    torch.testing.assert_close(coarse, fine[:, ::2, ::2], rtol=0, atol=1e-12)
    assert coarse.abs().max() <= 1.0
