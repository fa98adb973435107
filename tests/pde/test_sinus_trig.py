"""The sin/cos ("sinus2") family: sampling, graphs, solver against independent answers, HDF5 files."""

import h5py
import numpy as np
import pytest

from foundry.pde.data.dataset import PDEDataset
from foundry.pde.data.generate import GenerateConfig, generate, grid
from foundry.pde.data.sinus import params_to_pde, sample_params
from foundry.pde.data.sinus_trig import (
    FAMILY,
    TrigParams,
    generate_trig,
    read_params,
    sample_trig_params,
    solve_trig_chunk,
    trig_params_to_pde,
    trig_terms,
    under_resolved,
)
from foundry.pde.data.spectral_solver import _to_fine, solve_periodic
from foundry.pde.data.symbolic_solver import solve_symbolic
from foundry.pde.graph.dag import NODE_TYPE_ID, build_graph

X = np.linspace(-1, 1, 128, endpoint=False)
SMALL = dict(num_x=128, num_t=11, dt=5e-4, chunk_size=16)


def rel(a, b):
    return np.linalg.norm(a - b, axis=(-2, -1)) / np.linalg.norm(b, axis=(-2, -1))


def solve(arrays, u0=None, source=None, kappa=None, dt=5e-4, num_t=11):
    """The spectral solver with the stored trig terms (optionally other u0/s/kappa arrays)."""
    u, ok = solve_periodic(
        arrays["u0"] if u0 is None else u0,
        arrays["c0"],
        arrays["c1"],
        arrays["source"] if source is None else source,
        arrays["kappa"] if kappa is None else kappa,
        num_t=num_t,
        dt=dt,
        extra=trig_terms(arrays["trig_coef"], arrays["trig_is_sin"], arrays["trig_in_flux"]),
    )
    assert ok.all()
    return u


@pytest.fixture(scope="module")
def chunk():
    out = solve_trig_chunk(GenerateConfig(seed=11, **SMALL), 0)
    assert len(out["u"]) >= 6
    return out


def test_sampling_keeps_sinus0_and_follows_the_recipe():
    draws = [sample_trig_params(np.random.default_rng([4, i]), X) for i in range(400)]
    base = sample_params(np.random.default_rng([4, 0]), X)  # the sinus0 part is drawn first, unchanged
    np.testing.assert_array_equal(draws[0].base.u0, base.u0)
    np.testing.assert_array_equal(draws[0].base.c1, base.c1)
    coef = np.stack([p.trig_coef for p in draws])  # (400, 2, 3)
    assert coef.shape == (400, 2, 3) and np.abs(coef).max() <= 3.0
    assert np.all(coef[..., 0] != 0)  # c_j0 always present
    assert not np.any((coef[..., 1] == 0) & (coef[..., 2] == 0))  # never both u and u^2 dropped
    for j, frac in ((1, 1 / 3), (2, 1 / 3)):  # u term dropped / u^2 term dropped, 1/3 each
        assert abs(np.mean(coef[..., j] == 0) - frac) < 0.06
    num_f1 = np.array([p.trig_in_flux.sum() for p in draws])
    assert set(num_f1) == {0, 1, 2} and abs(np.mean(num_f1 == 1) - 1 / 3) < 0.07
    assert all(np.all(np.diff(p.trig_in_flux.astype(int)) >= 0) for p in draws)  # f0 terms first
    assert abs(np.mean([p.trig_is_sin.mean() for p in draws]) - 0.5) < 0.06
    with pytest.raises(ValueError, match="num_trig"):
        sample_trig_params(np.random.default_rng(0), X, num_trig=-1)


def test_graph_without_trig_terms_is_the_sinus0_graph_and_trig_adds_sin_cos_nodes():
    for i in range(20):
        base = sample_params(np.random.default_rng([9, i]), X)
        empty = TrigParams(base, np.zeros((0, 3)), np.zeros(0, bool), np.zeros(0, bool))
        g0, g1 = build_graph(params_to_pde(base, X), 3), build_graph(trig_params_to_pde(empty, X), 3)
        for key in ("node_type", "node_scalar", "spatial_pos", "attn_mask", "in_degree", "function_values"):
            np.testing.assert_array_equal(getattr(g0, key), getattr(g1, key), err_msg=key)
        p = sample_trig_params(np.random.default_rng([9, i]), X)
        g = build_graph(trig_params_to_pde(p, X), 3)
        assert (g.node_type == NODE_TYPE_ID["sin"]).sum() == p.trig_is_sin.sum()
        assert (g.node_type == NODE_TYPE_ID["cos"]).sum() == (~p.trig_is_sin).sum()
        for c in p.trig_coef.ravel():  # every nonzero trig coefficient is a scalar node
            assert c == 0 or np.any(np.isclose(g.node_scalar, c))


def test_trig_terms_match_direct_evaluation():
    rng = np.random.default_rng(2)
    coef, is_sin = rng.uniform(-3, 3, (5, 2, 3)), rng.random((5, 2)) < 0.5
    in_flux = np.array([[False, False], [False, True], [True, True], [False, True], [False, False]])
    u = rng.normal(size=(5, 64))
    react, flux = trig_terms(coef, is_sin, in_flux)(u)
    for b in range(5):
        want = [np.zeros(64), np.zeros(64)]
        for j in range(2):
            arg = coef[b, j, 1] * u[b] + coef[b, j, 2] * u[b] ** 2
            want[int(in_flux[b, j])] += coef[b, j, 0] * (np.sin(arg) if is_sin[b, j] else np.cos(arg))
        np.testing.assert_allclose(react[b], want[0], atol=1e-12)
        np.testing.assert_allclose(flux[b], want[1], atol=1e-12)


def test_solutions_agree_with_the_symbolic_solver(chunk):
    """A second solver that reads the PDE's expression tree (sin/cos nodes included)."""
    for i in range(4):
        p = read_params(chunk, i)
        _, _, u_sym = solve_symbolic(trig_params_to_pde(p, X), num_t=11, dt=5e-4)
        assert rel(chunk["u"][i], u_sym) < 1e-3, i


def test_solutions_agree_with_finer_step_and_grid(chunk):
    u_dt = solve(chunk, dt=5e-5)
    assert rel(chunk["u"], u_dt).max() < 3e-3
    to_fine = lambda v: _to_fine(np.fft.rfft(v, axis=-1), 128, 256)  # noqa: E731 (band-limited interpolant)
    u_fine = solve(chunk, to_fine(chunk["u0"]), to_fine(chunk["source"]), to_fine(chunk["kappa"]))
    assert rel(chunk["u"], u_fine[..., ::2]).max() < 1e-2


def test_under_resolved_flags_a_grid_scale_front():
    t = np.linspace(0, 1, 5)[None, :, None]
    smooth = np.sin(np.pi * X)[None, None] * (1 + t)
    front = np.tanh((X - 0.1) / 0.004)[None, None] * np.ones_like(t)  # width below the grid spacing
    flags = under_resolved(np.concatenate([smooth, front]))
    assert flags.tolist() == [False, True]


def test_generated_file_reads_back_and_is_deterministic(tmp_path):
    cfg = GenerateConfig(num_samples=10, seed=3, **SMALL)
    assert generate_trig(cfg, tmp_path / "a.h5", progress=False) == 10
    generate_trig(GenerateConfig(num_samples=4, seed=3, **SMALL), tmp_path / "b.h5", progress=False)
    generate_trig(cfg, tmp_path / "b.h5", progress=False)  # resumed
    with h5py.File(tmp_path / "a.h5", "r") as f, h5py.File(tmp_path / "b.h5", "r") as g:
        assert f.attrs["family"] == f"{FAMILY}-periodic" and f["u"].shape == (10, 11, 128)
        a = {k: f[k][:] for k in f}
        for k in a:
            np.testing.assert_array_equal(a[k], g[k][:], err_msg=k)
    for i in range(10):  # stored graphs rebuild from the stored parameters
        graph = build_graph(trig_params_to_pde(read_params(a, i), a["x"]), 3)
        np.testing.assert_array_equal(graph.spatial_pos, a["spatial_pos"][i])
        np.testing.assert_array_equal(graph.node_scalar, a["node_scalar"][i])
    ds = PDEDataset(tmp_path / "a.h5", num_mod=3)
    assert ds.periodic and len(ds) == 10
    with pytest.raises(ValueError, match="family"):  # a sinus0 run cannot extend a sinus2 file
        generate(GenerateConfig(num_samples=12, seed=3, **SMALL), tmp_path / "a.h5", progress=False)
    with pytest.raises(ValueError, match="boundary"):
        generate_trig(GenerateConfig(boundary="robin", **SMALL), tmp_path / "c.h5", progress=False)
    _, x = grid(cfg)
    np.testing.assert_array_equal(a["x"], x)


def test_few_shot_benchmark_quick(tmp_path, monkeypatch):
    """benchmarks/pde/few_shot.py --quick: tiny data, a few steps, every artefact written, into
    out/pde/... by default, never over the committed results in docs/figures/pde."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "pde" / "few_shot.py"
    spec = importlib.util.spec_from_file_location("few_shot", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "few_shot", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    monkeypatch.chdir(tmp_path)
    res = bench.main(["--quick"])
    assert not (tmp_path / "docs").exists()
    out, fig = tmp_path / "out" / "pde" / "few_shot", tmp_path / "out" / "pde" / "quick"
    saved = json.loads((fig / "few_shot_quick.json").read_text())
    assert saved["runs"].keys() == {"4", "8"} and saved["num_test"] == 4 and saved["quick"]
    for runs in saved["runs"].values():
        for name in ("finetune", "scratch"):
            steps = [s for s, _ in runs[name]["curve"]]
            assert steps == [0, 3, 6] and 0 <= runs[name]["final"] <= 5
        assert runs["finetune"]["curve"][0][1] == saved["zero_shot"]
        assert runs["scratch"]["curve"][0][1] == saved["untrained"]
        assert runs["finetune"]["final"] != saved["zero_shot"]  # the weights did move
    assert (fig / "few_shot_quick.png").stat().st_size > 10_000
    assert "| 8 |" in (fig / "few_shot_quick.md").read_text()
    assert res["zero_shot"] == saved["zero_shot"]
    with h5py.File(out / "quick" / f"{FAMILY}_test_s101.h5", "r") as f:
        assert f.attrs["family"] == f"{FAMILY}-periodic" and f["u"].shape[0] == 4


def test_cli_generates_the_family(tmp_path):
    from typer.testing import CliRunner

    from foundry.cli import app

    small = ["--num-t", "11", "--dt", "1e-3", "--seed", "3"]
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "pde",
            "generate",
            "--family",
            "sinus-trig",
            "--out",
            str(tmp_path / "t.h5"),
            "--num-samples",
            "3",
            *small,
        ],
    )
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert f.attrs["family"] == f"{FAMILY}-periodic" and f["trig_coef"].shape == (3, 2, 3)
    res = runner.invoke(app, ["pde", "generate", "--family", "sinus9", "--out", str(tmp_path / "x.h5")])
    assert res.exit_code != 0 and "--family" in res.output
    res = runner.invoke(
        app,
        ["pde", "generate", "--family", "sinus-trig", "--boundary", "robin", "--out", str(tmp_path / "r.h5")],
    )
    assert res.exit_code != 0 and "periodic only" in res.output
