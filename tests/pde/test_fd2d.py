"""Finite-difference 2D solvers on the square (per-edge BCs) and the disk: closed forms, order, batching."""

import math

import pytest
import torch
from scipy.optimize import brentq
from scipy.special import j0, j1, jn_zeros

from foundry.pde.data.fd2d import (
    U_MAX,
    Disk,
    SquareBC,
    node_grid,
    solve_dcr_disk,
    solve_dcr_square,
    solve_wave_disk,
    solve_wave_square,
)

ZERO = torch.zeros(1, 3, dtype=torch.float64)


def vec(*v):
    return torch.tensor(v, dtype=torch.float64)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def bc(dirichlet, alpha, beta):
    return SquareBC(torch.tensor([dirichlet]), vec(*alpha)[None], vec(*beta)[None])


def test_dirichlet_sine_mode_decays_at_second_order():
    # u_t = a Δu, u = 0 on all edges: sin(pi x) sin(pi y) decays as exp(-2 pi^2 a t)
    errs = []
    for n in (9, 17, 33):
        x, y = node_grid(n)
        u0 = torch.sin(math.pi * x) * torch.sin(math.pi * y)
        u, ok = solve_dcr_square(
            u0[None],
            SquareBC.uniform(1, "dirichlet"),
            vec(0.05),
            ZERO,
            ZERO,
            ZERO,
            num_t=3,
            dt=2.5e-3,
            t_end=0.5,
        )
        errs.append(rel(u[0, -1], math.exp(-2 * math.pi**2 * 0.05 * 0.5) * u0))
        assert ok.item()
    assert errs[1] < 3e-3 and all(3.8 < errs[i] / errs[i + 1] < 4.2 for i in range(2)), errs


def test_mixed_edges_nonzero_dirichlet_value_and_neumann():
    # u = 0.3 on x = 0, 1 (lifting), Neumann on y = 0, 1: 0.3 + sin(pi x) cos(pi y) e^{-2 pi^2 a t}
    n = 33
    x, y = node_grid(n)
    mode = torch.sin(math.pi * x) * torch.cos(math.pi * y)
    cond = bc([True, True, False, False], (0, 0, 0, 0), (-0.3, -0.3, 0, 0))
    u, ok = solve_dcr_square(
        (0.3 + mode)[None], cond, vec(0.05), ZERO, ZERO, ZERO, num_t=3, dt=2.5e-3, t_end=0.5
    )
    exact = 0.3 + math.exp(-2 * math.pi**2 * 0.05 * 0.5) * mode
    assert ok.item() and (u[0, -1] - exact).abs().max().item() < 1e-3


def robin_mode(k, alpha, x, y):
    return (torch.cos(k * x) + alpha / k * torch.sin(k * x)) * torch.cos(math.pi * y)


def test_robin_eigenmode_decays_at_second_order_and_reference_forms_agree():
    # ∂_n u + u = 0 on x = 0, 1, Neumann on y: X = cos(kx) + sin(kx)/k with (k^2 - 1) sin k = 2k cos k
    k = brentq(lambda s: (s * s - 1) * math.sin(s) - 2 * s * math.cos(s), 1.0, math.pi)
    a, t_end = 0.05, 0.5
    cond = bc([False] * 4, (1, 1, 0, 0), (0, 0, 0, 0))
    errs = []
    for n in (9, 17, 33):
        x, y = node_grid(n)
        u0 = robin_mode(k, 1.0, x, y)
        u, ok = solve_dcr_square(u0[None], cond, vec(a), ZERO, ZERO, ZERO, num_t=3, dt=2.5e-3, t_end=t_end)
        errs.append(rel(u[0, -1], math.exp(-a * (k * k + math.pi**2) * t_end) * u0))
    assert errs[1] < 3e-3 and all(3.6 < errs[i] / errs[i + 1] < 4.4 for i in range(2)), errs
    # the same condition as the reference's N-type (a u + ∂_n u + c) and D-type (u + b ∂_n u + c) Robin
    n_type = SquareBC.from_n_type(vec(1, 1, 0, 0)[None], torch.zeros(1, 4, dtype=torch.float64))
    d_type = SquareBC.from_d_type(vec(1, 1, 0, 0)[None], torch.zeros(1, 4, dtype=torch.float64))
    assert torch.equal(n_type.dirichlet, cond.dirichlet) and torch.equal(n_type.alpha, cond.alpha)
    assert d_type.dirichlet.tolist() == [[False, False, True, True]] and d_type.alpha[0, 0].item() == 1.0


def test_robin_with_source_keeps_its_discrete_steady_state():
    # u* = x^2 + p x solves -a Δu + s = 0 with s = 2a; Robin ∂_n u + alpha u + beta = 0 on x = 0, 1 fixes
    # beta; second differences and ghost nodes are exact for quadratics, so u* must stay to rounding
    n, a, p, al = 17, 0.03, -0.4, 0.7
    x, _ = node_grid(n)
    u_star = x**2 + p * x
    cond = bc([False] * 4, (al, al, 0, 0), (p - al * 0.0, -(2 + p + al * (1 + p)), 0, 0))
    src = torch.full((1, n, n), 2 * a, dtype=torch.float64)
    u, ok = solve_dcr_square(u_star[None], cond, vec(a), ZERO, ZERO, ZERO, src, num_t=3, dt=5e-3, t_end=0.2)
    assert ok.item() and (u[0] - u_star).abs().max().item() < 1e-11


def nonlinear_case(n, batch=1):
    """Every DCR term present, Robin on x, mixed Dirichlet (0.1) / Neumann on y."""
    x, y = node_grid(n)
    u0 = (0.5 * torch.cos(math.pi * x) * torch.sin(2 * math.pi * y) + 0.2 * x).expand(batch, n, n)
    source = (0.2 * torch.sin(2 * math.pi * x) * y).expand(batch, n, n)
    c0, c1, c2 = (
        vec(*c)[None].expand(batch, 3) for c in ((0.5, -0.5, 0.3), (0.3, 0.5, -0.2), (-0.4, 0.2, 0.3))
    )
    cond = SquareBC(
        torch.tensor([[False, False, True, False]]).expand(batch, 4),
        vec(0.5, 1.0, 0, 0)[None].expand(batch, 4),
        vec(0.1, -0.2, -0.1, 0)[None].expand(batch, 4),
    )
    return u0, cond, torch.full((batch,), 0.02, dtype=torch.float64), c0, c1, c2, source


def test_nonlinear_member_converges_at_second_order_in_space():
    kw = {"num_t": 3, "t_end": 0.5, "dt": 2.5e-3}
    ref, _ = solve_dcr_square(*nonlinear_case(65), **kw)
    errs = [
        rel(solve_dcr_square(*nonlinear_case(n), **kw)[0], ref[..., :: 64 // (n - 1), :: 64 // (n - 1)])
        for n in (17, 33)
    ]
    assert errs[0] < 2e-2 and errs[0] / errs[1] > 3.0, errs


def test_disk_dirichlet_eigenmode_rate_approached_at_first_order():
    # u0 = J0(j01 rho / R) inside, 0 on the circle: decays as exp(-a j01^2 / R^2 t) in the continuum
    radius, a = 0.4, 0.05
    j01 = jn_zeros(0, 1)[0]
    exact_rate = a * j01**2 / radius**2
    errs = []
    for n in (17, 33, 65):
        x, y = node_grid(n)
        rho = torch.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
        u0 = torch.where(rho < radius, torch.from_numpy(j0(j01 * rho.numpy() / radius)), 0.0)
        u, ok = solve_dcr_disk(
            u0[None], Disk(vec(radius), vec(0.0)), vec(a), ZERO, ZERO, ZERO, num_t=3, dt=5e-3, t_end=1.0
        )
        rate = math.log(u[0, 1].norm() / u[0, 2].norm()) / 0.5
        errs.append(abs(rate / exact_rate - 1))
        assert ok.item() and (u[0, -1][rho >= radius] == 0).all()
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.04 and errs[0] / errs[2] > 3, errs


def test_disk_constant_boundary_value_is_a_steady_state():
    n = 33
    u0 = torch.full((2, n, n), 0.7, dtype=torch.float64)
    disk = Disk(vec(0.3, 0.5), vec(0.7, 0.7))
    u, ok = solve_dcr_disk(
        u0,
        disk,
        vec(0.01, 0.1),
        ZERO.expand(2, 3),
        ZERO.expand(2, 3),
        ZERO.expand(2, 3),
        num_t=3,
        dt=1e-2,
        t_end=0.2,
    )
    assert ok.all() and (u - 0.7).abs().max().item() < 1e-9  # to the CG tolerance (1e-10 per solve)


def test_square_batch_equals_samples_solved_alone():
    args = list(nonlinear_case(17, batch=3))
    args[1] = SquareBC(
        torch.tensor([[False, False, True, False], [True, True, True, True], [False] * 4]),
        vec(0.5, 1.0, 0, 0)[None].repeat(3, 1),
        vec(0.1, -0.2, -0.1, 0)[None].repeat(3, 1),
    )
    args[2] = vec(0.02, 0.005, 0.01)
    together, ok = solve_dcr_square(*args, num_t=3, t_end=0.2, dt=5e-3)
    for b in range(3):
        cond = SquareBC(*(f[b : b + 1] for f in (args[1].dirichlet, args[1].alpha, args[1].beta)))
        alone, ok_b = solve_dcr_square(
            args[0][b : b + 1], cond, *(v[b : b + 1] for v in args[2:]), num_t=3, t_end=0.2, dt=5e-3
        )
        assert ok[b] == ok_b[0]
        torch.testing.assert_close(together[b], alone[0], rtol=0, atol=1e-12)


def test_disk_batch_equals_samples_solved_alone():
    n = 33
    x, y = node_grid(n)
    u0 = torch.stack([torch.sin(3 * x) * y, torch.cos(2 * y) + x])
    c0, c1, c2 = (vec(*c)[None].repeat(2, 1) for c in ((0.5, -0.5, 0.3), (0.3, 0.5, -0.2), (-0.4, 0.2, 0.3)))
    args = (u0, Disk(vec(0.45, 0.3), vec(0.2, -0.1)), vec(0.01, 0.05), c0, c1, c2)
    together, ok = solve_dcr_disk(*args, num_t=3, t_end=0.2, dt=5e-3)
    for b in range(2):
        disk = Disk(args[1].radius[b : b + 1], args[1].value[b : b + 1])
        alone, _ = solve_dcr_disk(
            u0[b : b + 1], disk, *(v[b : b + 1] for v in args[2:]), num_t=3, t_end=0.2, dt=5e-3
        )
        # CG runs the batch's iteration count (from the largest a), so agreement is to its tolerance
        torch.testing.assert_close(together[b], alone[0], rtol=0, atol=1e-8)
    assert ok.all()


def test_blow_up_is_flagged_and_kept_away_from_the_others():
    u0, cond, a, c0, c1, c2, source = nonlinear_case(17, batch=2)
    u0, c0 = u0.clone(), c0.clone()
    u0[1] = 2.0
    c0[1] = vec(0, 0, -3.0)  # u_t = 3 u^3 from u = 2 blows up at t = 1/24
    u, ok = solve_dcr_square(u0, cond, a, c0, c1, c2, source, num_t=11, dt=1e-3, t_end=0.5)
    alone, _ = solve_dcr_square(
        u0[:1],
        SquareBC(cond.dirichlet[:1], cond.alpha[:1], cond.beta[:1]),
        a[:1],
        c0[:1],
        c1[:1],
        c2[:1],
        source[:1],
        num_t=11,
        dt=1e-3,
        t_end=0.5,
    )
    assert ok.tolist() == [True, False]
    assert torch.isfinite(u).all() and u[1].abs().max() <= U_MAX
    torch.testing.assert_close(u[0], alone[0], rtol=0, atol=1e-12)


def test_wave_standing_mode_with_dirichlet_edges_at_second_order():
    # u_tt = Δu, u = 0 on the edges: sin(pi x) sin(pi y) cos(sqrt(2) pi t); dt proportional to h
    errs = []
    for n, dt in ((17, 1e-2), (33, 5e-3)):
        x, y = node_grid(n)
        u0 = torch.sin(math.pi * x) * torch.sin(math.pi * y)
        u, ok = solve_wave_square(
            u0[None], 0 * u0[None], SquareBC.uniform(1, "dirichlet"), vec(1.0), num_t=11, dt=dt
        )
        errs.append(((u[0, -1] - math.cos(math.sqrt(2) * math.pi) * u0).norm() / u0.norm()).item())
    assert errs[0] < 1e-2 and 3.6 < errs[0] / errs[1] < 4.4, errs


def test_mur_edges_absorb_a_normally_incident_pulse():
    # u = f(x - t) leaves through x = 1 (Mur u_t + ∂_n u = 0: reference a = c = 0, b = 1); Neumann reflects
    n = 65
    x, _ = node_grid(n)
    f = torch.exp(-(((x - 0.5) / 0.06) ** 2))
    u0, v0 = f[None], (2 * (x - 0.5) / 0.06**2 * f)[None]  # v0 = -f'
    zero = torch.zeros(1, 4, dtype=torch.float64)
    mur = SquareBC.from_mur(zero, vec(1, 1, 1e9, 1e9)[None], zero)  # y-edges: b huge is nearly Neumann
    assert mur.gamma[0, :2].tolist() == [1.0, 1.0] and not mur.dirichlet.any()
    u, ok = solve_wave_square(u0, v0, mur, vec(1.0), num_t=11, dt=5e-3)
    neumann, _ = solve_wave_square(u0, v0, SquareBC.uniform(1, "robin"), vec(1.0), num_t=11, dt=5e-3)
    assert ok.item() and u[0, -1].abs().max().item() < 1e-2 and neumann[0, -1].abs().max().item() > 0.9


def test_wave_batch_equals_samples_solved_alone_and_step_limit_is_checked():
    n = 17
    x, y = node_grid(n)
    u0 = torch.stack([torch.sin(3 * x) * y, torch.cos(2 * y) + x, x * y])
    cond = SquareBC(
        torch.tensor([[True, False, False, False], [False] * 4, [True] * 4]),
        vec(0.5, 0, 1, 0)[None].repeat(3, 1),
        vec(0.1, 0, -0.2, 0)[None].repeat(3, 1),
        vec(0, 1, 0, 0.5)[None].repeat(3, 1),
    )
    args = (u0, 0.5 * u0, cond, vec(1.0, 0.5, 2.0), vec(0.0, 0.3, 0.1), 0.1 * u0)
    together, ok = solve_wave_square(*args, num_t=3, t_end=0.2, dt=5e-3)
    for b in range(3):
        c = SquareBC(*(f[b : b + 1] for f in (cond.dirichlet, cond.alpha, cond.beta, cond.gamma)))
        alone, _ = solve_wave_square(
            u0[b : b + 1],
            0.5 * u0[b : b + 1],
            c,
            *(v[b : b + 1] for v in args[3:]),
            num_t=3,
            t_end=0.2,
            dt=5e-3,
        )
        torch.testing.assert_close(together[b], alone[0], rtol=0, atol=1e-12)
    assert ok.all()
    with pytest.raises(ValueError, match="leapfrog"):
        solve_wave_square(*args, num_t=3, t_end=0.2, dt=5e-2)
    with pytest.raises(ValueError, match="Mur"):
        solve_dcr_square(u0, cond, vec(0.01, 0.01, 0.01), *(torch.zeros(3, 3, dtype=torch.float64),) * 3)


def bessel_robin_mode(radius, alpha, n):
    """(lam, rho, J0(lam rho)) on the grid, -lam J1(lam R) + alpha J0(lam R) = 0: ∂_n u + alpha u = 0 at R."""
    lo, hi = (1e-6, jn_zeros(0, 1)[0] / radius) if alpha > 0 else (3.0 / radius, 5.0 / radius)
    lam = brentq(lambda s: -s * j1(s * radius) + alpha * j0(s * radius), lo, hi)
    x, y = node_grid(n)
    rho = torch.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
    return lam, rho, torch.from_numpy(j0(lam * rho.numpy()))


def test_disk_robin_bessel_mode_decays_at_second_order_and_reference_forms_agree():
    # u_t = a Δu, ∂_n u + u = 0 on rho = 0.4: J0(lam rho) exp(-a lam^2 t); errors on the nodes inside
    radius, a, t_end = 0.4, 0.05, 0.25
    disk = Disk.from_d_type(vec(radius), vec(1.0), vec(0.0))  # u + ∂_n u = 0
    assert not disk.dirichlet.any() and disk.alpha.item() == 1.0 and disk.beta.item() == 0.0
    errs = []
    for n in (17, 33, 65):
        lam, rho, u0 = bessel_robin_mode(radius, 1.0, n)
        u, ok = solve_dcr_disk(u0[None], disk, vec(a), ZERO, ZERO, ZERO, num_t=3, dt=5e-3, t_end=t_end)
        inside = rho < radius
        errs.append(rel(u[0, -1][inside], math.exp(-a * lam**2 * t_end) * u0[inside]))
        assert ok.item() and (u[0, -1][disk.cell_volumes(n)[0] == 0] == 0).all()
    assert errs[1] < 5e-4 and all(errs[i] / errs[i + 1] > 3.5 for i in range(2)), errs
    n_type = Disk.from_n_type(vec(radius), vec(1.0), vec(0.0))
    u_n, _ = solve_dcr_disk(u0[None], n_type, vec(a), ZERO, ZERO, ZERO, num_t=3, dt=5e-3, t_end=t_end)
    torch.testing.assert_close(u_n, u, rtol=0, atol=1e-12)


def test_disk_neumann_conserves_the_integral_and_robin_constant_is_steady():
    n = 33
    x, y = node_grid(n)
    u0 = torch.sin(7 * x) * torch.cos(5 * y) + x
    neumann = Disk(vec(0.37), alpha=vec(0.0), beta=vec(0.0))
    u, ok = solve_dcr_disk(u0[None], neumann, vec(0.05), ZERO, ZERO, ZERO, num_t=3, dt=5e-3, t_end=0.2)
    vol = neumann.cell_volumes(n)
    assert abs(vol.sum().item() / (math.pi * 0.37**2) - 1) < 1e-12
    mass = (vol[:, None] * u).flatten(2).sum(-1)[0]  # sum V u per frame
    assert ok.item() and (mass - mass[0]).abs().max().item() < 1e-9 * mass.abs().max().item()
    cells = vol[0] > 0
    assert u[0, -1][cells].std().item() < 0.9 * u[0, 0][cells].std().item()  # it did diffuse
    # 2 u + ∂_n u - 1.4 = 0 holds for u = 0.7 (with a reaction that vanishes there: c01 u + c02 u^2)
    robin = Disk.from_n_type(vec(0.3, 0.5), vec(2.0, 2.0), vec(-1.4, -1.4))
    c0 = vec(0.7, -1.0, 0.0)[None].repeat(2, 1)
    u, ok = solve_dcr_disk(
        torch.full((2, n, n), 0.7, dtype=torch.float64),
        robin,
        vec(0.01, 0.1),
        c0,
        ZERO.expand(2, 3),
        ZERO.expand(2, 3),
        num_t=3,
        dt=1e-2,
        t_end=0.2,
    )
    inside = robin.cell_volumes(n) > 0
    assert ok.all() and (u[:, -1][inside] - 0.7).abs().max().item() < 1e-9


def test_disk_mixed_conditions_batch_equals_samples_solved_alone():
    n = 33
    x, y = node_grid(n)
    u0 = torch.stack([torch.sin(3 * x) * y, torch.cos(2 * y) + x, x * y - 0.3])
    c0, c1, c2 = (vec(*c)[None].repeat(3, 1) for c in ((0.5, -0.5, 0.3), (0.3, 0.5, -0.2), (-0.4, 0.2, 0.3)))
    disk = Disk.from_d_type(vec(0.45, 0.3, 0.4), vec(0.5, 0.0, 2.0), vec(0.1, 0.2, -0.3))
    assert disk.dirichlet.tolist() == [False, True, False] and disk.value[1].item() == -0.2
    args = (u0, disk, vec(0.01, 0.05, 0.02), c0, c1, c2, 0.1 * u0)
    together, ok = solve_dcr_disk(*args, num_t=3, t_end=0.2, dt=5e-3)
    for b in range(3):
        idx = torch.tensor([b])
        alone, _ = solve_dcr_disk(
            u0[idx], disk.select(idx), *(v[idx] for v in args[2:]), num_t=3, t_end=0.2, dt=5e-3
        )
        torch.testing.assert_close(together[b], alone[0], rtol=0, atol=1e-8)  # to the CG tolerance
    assert ok.all() and (together[1, -1][disk.select(torch.tensor([1])).mask(n)[0] == 0] == -0.2).all()
    with pytest.raises(ValueError, match="Mur"):
        solve_dcr_disk(u0, Disk.from_mur(disk.radius, *(vec(1, 1, 1),) * 3), *args[2:])


def test_wave_disk_robin_standing_mode_at_second_order():
    # u_tt = Δu, ∂_n u + u = 0 on rho = 0.4: J0(lam rho) cos(lam t); dt = 0.32 h
    errs = []
    for n in (33, 65):
        lam, rho, u0 = bessel_robin_mode(0.4, 1.0, n)
        u, ok = solve_wave_disk(
            u0[None],
            0 * u0[None],
            Disk(vec(0.4), alpha=vec(1.0), beta=vec(0.0)),
            vec(1.0),
            num_t=3,
            dt=0.5 / math.ceil(0.5 / (0.32 / (n - 1))),
            t_end=0.5,
        )
        inside = rho < 0.4
        errs.append(rel(u[0, -1][inside], math.cos(lam * 0.5) * u0[inside]))
        assert ok.item()
    assert errs[0] < 3e-3 and errs[0] / errs[1] > 3.5, errs


def test_wave_disk_mur_lets_a_radial_pulse_leave_and_batch_equals_alone():
    # a Gaussian at the centre spreads out and meets the circle at t ~ 0.4; Mur (u_t + ∂_n u = 0:
    # reference a = c = 0, b = 1) lets it out, Dirichlet and Neumann reflect it
    n = 65
    x, y = node_grid(n)
    rho = torch.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
    u0 = torch.exp(-((rho / 0.05) ** 2)).expand(3, n, n)
    one, zero = vec(1.0, 1.0, 1.0), vec(0.0, 0.0, 0.0)
    disk = Disk(vec(0.4, 0.4, 0.4), zero, zero, zero, torch.tensor([False, True, False]), vec(1.0, 0.0, 0.0))
    u, ok = solve_wave_disk(u0, 0 * u0, disk, one, num_t=3, dt=5e-3)
    inside = rho < 0.4
    norms = [u[b, -1][inside].norm().item() for b in range(3)]  # Mur, Dirichlet, Neumann
    assert ok.all() and norms[0] < 0.1 * min(norms[1:]), norms
    for b in range(3):
        idx = torch.tensor([b])
        alone, _ = solve_wave_disk(u0[idx], 0 * u0[idx], disk.select(idx), one[idx], num_t=3, dt=5e-3)
        torch.testing.assert_close(u[b], alone[0], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="leapfrog"):
        solve_wave_disk(u0, 0 * u0, disk, one, num_t=3, dt=2.5e-2, t_end=0.1)
