"""PDEBench-like benchmark sets: rescalings, closed forms, solver refinement, file format."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest

from foundry.pde.data.dataset import PDEDataset
from foundry.pde.data.pdebench import (
    BenchmarkSpec,
    generate_benchmark,
    sample_initial_conditions,
    solve_burgers_fv,
    spec_from_options,
)
from foundry.pde.data.sinus import SinusParams, params_to_pde
from foundry.pde.data.spectral_solver import solve_periodic
from foundry.pde.graph.dag import GRAPH_KEYS, build_graph
from foundry.pde.graph.parser import parse_pde

X = np.linspace(-1, 1, 128, endpoint=False)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def smooth_ics(num: int = 4, seed: int = 0):
    """PDEBench-like ICs without the abs/window options (band-limited, for spectral checks)."""
    ics = sample_initial_conditions(np.random.default_rng(seed), num)
    return replace(ics, is_abs=np.zeros(num, bool), is_window=np.zeros(num, bool))


def test_initial_conditions_follow_pdebench_recipe():
    ics = sample_initial_conditions(np.random.default_rng(0), 2000)
    assert np.all(ics.mult.sum(1) == 2)  # two wavenumber draws, a repeated draw doubles k
    assert (ics.mult == 2).any()
    g = ics.values(X)
    assert g.shape == (2000, 128) and np.abs(g).max() <= 4.0
    assert 0.05 < ics.is_abs.mean() < 0.15 and 0.05 < ics.is_window.mean() < 0.15
    # periodic: the function at x and x + 2 agree
    np.testing.assert_allclose(ics.values(X + 2.0), g, atol=1e-12)
    norm = sample_initial_conditions(np.random.default_rng(0), 50, normalize=True).values(X)
    np.testing.assert_allclose(norm.min(1), 0.0, atol=1e-12)
    np.testing.assert_allclose(norm.max(1), 1.0)


def test_spec_validation_and_text():
    with pytest.raises(ValueError, match="equation"):
        BenchmarkSpec("kdv", nu=1.0)
    with pytest.raises(ValueError, match="nu"):
        BenchmarkSpec("burgers")
    with pytest.raises(ValueError, match="num_x_solve"):
        BenchmarkSpec("burgers", nu=0.1, num_x_solve=200)
    s = BenchmarkSpec("burgers", nu=0.01)
    assert s.kappa == pytest.approx(0.02 / np.pi)
    assert s.text() == f"u_t + (2*u^2 - {0.02 / np.pi!r}*u_x)_x = 0"
    assert spec_from_options("advection", None, 1.0, None).speed == 4.0
    rd = spec_from_options("reaction_diffusion", None, None, None)
    assert (rd.nu, rd.rho, rd.kappa) == (1.0, 1.0, 4.0)


def test_burgers_text_graph_matches_the_training_family():
    """The text PDE gives the graph of the family member (c12 = 2, kappa) written in flux form."""
    spec = BenchmarkSpec("burgers", nu=0.01)
    u0 = np.sin(np.pi * X)
    p = SinusParams(
        np.zeros(3), np.array([0.0, 2.0, 0.0]), np.zeros(128), 0, np.full(128, spec.kappa), False, u0, True
    )
    a, b = build_graph(parse_pde(spec.text(), lambda _x: u0), 3), build_graph(params_to_pde(p, X), 3)
    for key in GRAPH_KEYS:
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), err_msg=key)


def test_burgers_rescaling_matches_pdebench_variables():
    """Solve the PDEBench form u_tau + (u^2)_xi = (nu/pi) u_xixi on tau in [0, 2]; frame tau = 2t is our t."""
    nu = 0.1
    ics = smooth_ics(3)
    u0 = ics.values(X)
    zeros, c1 = np.zeros((3, 3)), np.tile([0.0, 1.0, 0.0], (3, 1))
    u_pdebench, ok1 = solve_periodic(
        u0, zeros, c1, np.zeros((3, 128)), np.full((3, 128), nu / np.pi), num_t=101, dt=2e-4, t_end=2.0
    )
    u_ours, ok2 = BenchmarkSpec("burgers", nu=nu, num_x_solve=128, dt=2e-4).solve(ics)
    assert ok1.all() and ok2.all()
    assert rel(u_ours, u_pdebench) < 1e-3
    # and the wrong viscosity (8 nu / pi, the post-2023 files on [0, 1]) is clearly different
    other, _ = BenchmarkSpec("burgers", nu=4 * nu, num_x_solve=128, dt=2e-4).solve(ics)
    assert rel(other, u_pdebench) > 1e-2


def test_advection_closed_form_agrees_with_the_spectral_solver():
    spec = BenchmarkSpec("advection", beta=1.0)
    ics = smooth_ics(4)
    u_exact, ok = spec.solve(ics)
    assert ok.all()
    np.testing.assert_allclose(u_exact[:, 0], ics.values(X))
    # after t = 0.5 with speed 4 the solution has travelled exactly one period
    np.testing.assert_allclose(u_exact[:, 50], u_exact[:, 0], atol=1e-12)
    c1 = np.tile([spec.speed, 0.0, 0.0], (4, 1))
    u_num, _ = solve_periodic(
        ics.values(X), np.zeros((4, 3)), c1, np.zeros((4, 128)), np.zeros((4, 128)), num_t=101, dt=1e-4
    )
    assert rel(u_num, u_exact) < 1e-3


def test_reaction_diffusion_logistic_closed_form_and_finer_step():
    spec = BenchmarkSpec("reaction_diffusion", nu=1.0, rho=1.0)
    ics = sample_initial_conditions(np.random.default_rng(1), 4, normalize=True)
    # a constant IC (no wavenumber drawn: sum of A_k sin(phi_k)) follows the logistic ODE u' = u (1 - u)
    const = replace(
        ics,
        mult=np.zeros_like(ics.mult),
        amp=np.full_like(ics.amp, 0.1),
        sign=np.ones(4),
        is_abs=np.ones(4, bool),
        is_window=np.zeros(4, bool),
        normalize=False,
    )
    u, ok = spec.solve(const)
    assert ok.all() and np.ptp(u[:, 0], axis=1).max() < 1e-12 and u[:, 0].min() > 0
    u0 = u[:, 0, :1]
    t = np.linspace(0, 1, 101)[None, :, None]
    np.testing.assert_allclose(
        u,
        np.broadcast_to(u0[:, None] * np.exp(t) / (1 - u0[:, None] + u0[:, None] * np.exp(t)), u.shape),
        rtol=1e-6,
        atol=1e-8,
    )
    coarse, _ = spec.solve(ics)
    fine, _ = BenchmarkSpec("reaction_diffusion", nu=1.0, rho=1.0, num_x_solve=256, dt=2.5e-5).solve(ics)
    assert rel(coarse, fine) < 1e-3


def test_burgers_fv_agrees_with_spectral_at_nu_0_01():
    """Two independent solvers (finite volumes, Fourier) agree where both resolve the shocks."""
    ics = smooth_ics(2, seed=3)
    spectral, ok = BenchmarkSpec("burgers", nu=0.01).solve(ics)
    xf = np.linspace(-1, 1, 512, endpoint=False)
    fv = solve_burgers_fv(ics.values(xf), 0.02 / np.pi)[:, :, ::4]
    assert ok.all()
    assert rel(fv, spectral) < 2e-2


def test_generate_benchmark_writes_the_project_format(tmp_path):
    spec = BenchmarkSpec("burgers", nu=0.1)
    path = tmp_path / "b.h5"
    n = generate_benchmark(spec, path, num_samples=5, seed=3, chunk_size=4)
    assert n == 5
    ds = PDEDataset(path, num_mod=3)
    assert ds.u.shape == (5, 101, 128) and ds.periodic
    with h5py.File(path) as f:
        assert f.attrs["pde_text"] == spec.text() and f.attrs["num_candidates"] == 8
        assert f.attrs["num_rejected"] == 0
        np.testing.assert_allclose(f["function_values"][:, 0, :, 1], f["u"][:, 0], atol=1e-6)
        u0 = f["u0"][:]
    # deterministic by seed
    generate_benchmark(spec, tmp_path / "c.h5", num_samples=5, seed=3, chunk_size=4)
    with h5py.File(tmp_path / "c.h5") as f:
        np.testing.assert_array_equal(f["u0"][:], u0)
    with pytest.raises(FileExistsError):
        generate_benchmark(spec, path, num_samples=5)


def test_cli_benchmark_data(tmp_path):
    from typer.testing import CliRunner

    from foundry.pde.cli import app

    runner = CliRunner()
    out = tmp_path / "adv.h5"
    ok = runner.invoke(
        app,
        [
            "benchmark-data",
            "--equation",
            "advection",
            "--beta",
            "1.0",
            "--num-samples",
            "3",
            "--out",
            str(out),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "u_t + (4.0*u)_x = 0" in ok.output and PDEDataset(out).u.shape == (3, 101, 128)
    bad = runner.invoke(app, ["benchmark-data", "--equation", "kdv", "--out", str(tmp_path / "k.h5")])
    assert bad.exit_code == 2 and "equation must be one of" in bad.output
    again = runner.invoke(app, ["benchmark-data", "--equation", "advection", "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
