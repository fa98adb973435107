"""Inverse problems: PSO on known functions, gradients through node_scalar and function_values
against finite differences of the plain model, slot finding, test problems, solver baseline, CLI."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from foundry.cli import app
from foundry.pde.checkpoint import save_checkpoint
from foundry.pde.data.dataset import graph_to_tensors
from foundry.pde.data.sinus import params_to_pde
from foundry.pde.graph.dag import GRAPH_KEYS, GraphSizes, build_graph
from foundry.pde.inverse.field import recover_field
from foundry.pde.inverse.invert import save_observations
from foundry.pde.inverse.problems import (
    Observations,
    add_noise,
    describe,
    get_scalars,
    make_problem,
    observe,
    set_scalars,
)
from foundry.pde.inverse.pso import PSOConfig, pso_minimize
from foundry.pde.inverse.scalar import ScalarInversion, recover_gradient
from foundry.pde.inverse.solver_baseline import _SolverMisfit, fourier_field
from foundry.pde.inverse.surrogate import Surrogate, scalar_slots
from foundry.pde.inverse.text import text_template
from foundry.pde.models.pdeformer import PDEformer, PDEformerConfig

ROOT = Path(__file__).resolve().parents[2]
X = np.linspace(-1.0, 1.0, 128, endpoint=False)
runner = CliRunner()
TINY = PDEformerConfig(
    d_model=32, num_layers=2, num_heads=4, ffn_dim=32, inr_hidden=16, inr_layers=3,
    scalar_hidden=32, function_hidden=16, hypernet_hidden=16,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return PDEformer(TINY).eval()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save_checkpoint(path, tiny_model, {"step": 0})
    return path


def _obs(rng, n_ic=3, n_t=4, n_x=5):
    ics = np.stack([np.sin(np.pi * (k + 1) * X + k) for k in range(n_ic)])
    t = np.sort(rng.uniform(0, 1, (n_ic, n_t)), 1)
    x = np.sort(rng.uniform(-1, 1, (n_ic, n_x)), 1)
    return Observations(ics, t, x, np.zeros((n_ic, n_t, n_x)))


def _model_prediction(model, pde, ic, coords):
    """The plain path: rebuild the graph with this IC, PDEformer.forward -> [Q]."""
    g = build_graph(replace_ic(pde, ic), model.config.num_mod, model.graph_sizes)
    arrays = graph_to_tensors({k: getattr(g, k)[None] for k in GRAPH_KEYS})
    with torch.no_grad():
        return model(arrays, torch.as_tensor(coords[None], dtype=torch.float32))[0].double()


def _plain_predictions(model, pde, obs):
    coords = obs.coords()
    preds = [_model_prediction(model, pde, obs.ic[i], coords[i]).numpy() for i in range(len(obs.ic))]
    return np.stack(preds).reshape(obs.u.shape)


def replace_ic(pde, ic):
    pde.initial[0] = type(pde.initial[0])(pde.initial[0].points, np.asarray(ic, dtype=np.float64))
    return pde


# -- PSO -------------------------------------------------------------------------------------


def test_pso_shifted_quadratic():
    centre = np.array([1.3, -0.7])
    res = pso_minimize(
        lambda p: ((p - centre) ** 2).sum(1),
        [-3, -3],
        [3, 3],
        PSOConfig(num_particles=32, num_generations=60),
    )
    assert np.abs(res.x - centre).max() < 1e-3 and res.fun < 1e-6
    assert res.num_evals == 32 * 61 and np.all(np.diff(res.history) <= 0)


def test_pso_rastrigin_global_minimum():
    def rastrigin(p):
        return 20 + (p**2 - 10 * np.cos(2 * np.pi * p)).sum(1)

    res = pso_minimize(rastrigin, [-5.12] * 2, [5.12] * 2, PSOConfig(num_particles=64, num_generations=120))
    assert np.abs(res.x).max() < 0.01 and res.fun < 0.02  # many local minima ~1 apart, value >= 1 off-centre


def test_pso_respects_box_and_rejects_bad_input():
    res = pso_minimize(
        lambda p: p.sum(1), [0.5, 1.0], [2.0, 4.0], PSOConfig(num_particles=16, num_generations=30)
    )
    assert np.allclose(res.x, [0.5, 1.0], atol=1e-3)
    with pytest.raises(ValueError, match="lower < upper"):
        pso_minimize(lambda p: p.sum(1), [1.0], [0.0])
    with pytest.raises(ValueError, match="num_particles"):
        PSOConfig(num_particles=1)
    with pytest.raises(ValueError, match="objective returned shape"):
        pso_minimize(lambda p: p.sum(), [0.0], [1.0], PSOConfig(num_particles=4, num_generations=1))


# -- locating unknowns in the graph ---------------------------------------------------------


def test_scalar_slots_fold_signs_and_factors():
    build = text_template("u_t + a*u_x - b*u_xx + (0.5*c*u^2)_x = 0", ["a", "b", "c"], X)
    g, base, slots = scalar_slots(build, ["a", "b", "c"], 3, GraphSizes())
    theta = np.array([0.7, 0.02, -1.5])
    want = build_graph(build(theta), 3).node_scalar
    np.testing.assert_allclose(base + theta @ slots, want, atol=1e-6)
    assert sorted(np.abs(slots).sum(1)) == [0.5, 1.0, 1.0]  # 0.5*c folds into one number
    assert (slots[1] == -1).sum() == 1  # -b*u_xx stores -b


@pytest.mark.parametrize(
    ("equation", "names", "match"),
    [
        ("u_t + a*u_x = 0", ["q"], "'q' does not appear"),
        ("u_t + a*u_x = 0", ["x"], "reserved"),
        ("u_t + a*u_x = 0", ["a", "a"], "distinct"),
        ("u_t + a*sin(pi*x)*u_x = 0", ["a"], "enters a coefficient field"),
        ("u_t + a*a*u_x = 0", ["a"], "non-linearly"),
    ],
)
def test_bad_unknowns_are_named(equation, names, match):
    with pytest.raises(ValueError, match=match):
        scalar_slots(text_template(equation, names, X), names, 3, GraphSizes())


# -- the surrogate equals the plain model, and gradients flow ------------------------------


@pytest.mark.parametrize("log_scalars", [False, True])
def test_surrogate_matches_plain_model(tiny_model, log_scalars):
    if log_scalars:  # the shipped checkpoint's encoder reads (c, sign c, log10|c|): the surrogate must too
        from foundry.pde.models.pdeformer import with_log_scalars

        tiny_model = with_log_scalars(tiny_model).eval()
        with torch.no_grad():
            tiny_model.scalar_encoder[0].weight[:, 1:].normal_(
                0, 0.5, generator=torch.Generator().manual_seed(0)
            )
    obs = _obs(np.random.default_rng(0))
    build = text_template("u_t + a*u_x - b*u_xx + sin(pi*x) = 0", ["a", "b"], X)
    inv = ScalarInversion(tiny_model, build, ["a", "b"], obs)
    theta = np.array([[0.8, 0.05], [-1.2, 0.3]])
    pred = inv.surrogate.predict(inv.node_scalar(torch.as_tensor(theta, dtype=torch.float32)))
    coords = obs.coords()
    for s in range(2):
        for i in range(3):
            ref = _model_prediction(tiny_model, build(theta[s]), obs.ic[i], coords[i])
            np.testing.assert_allclose(pred[s, i].double().numpy(), ref.numpy(), atol=1e-5)


def test_scalar_gradient_flows_through_node_scalar(tiny_model):
    """Autograd d(misfit)/d(theta) equals finite differences of the plain model's misfit."""
    rng = np.random.default_rng(1)
    obs = _obs(rng)
    names = ["a", "b"]
    build = text_template("u_t + a*u_x + (b*u^2)_x - 0.1*u_xx = 0", names, X)
    obs.u[:] = _plain_predictions(tiny_model, build(np.array([1.1, -0.6])), obs)
    inv = ScalarInversion(tiny_model, build, names, obs)
    theta0 = np.array([0.4, -0.9])
    theta = torch.tensor(theta0[None], dtype=torch.float32, requires_grad=True)
    inv.misfit(theta).sum().backward()
    grad = theta.grad[0].double().numpy()

    def plain_misfit(th):
        pred = torch.stack(
            [_model_prediction(tiny_model, build(th), obs.ic[i], obs.coords()[i]) for i in range(3)]
        )
        lab = torch.as_tensor(obs.u.reshape(3, -1))
        return float(
            torch.mean(torch.sqrt(((pred - lab) ** 2).mean(1)) / (torch.sqrt((lab**2).mean(1)) + 0.05))
        )

    h = 1e-2
    fd = [(plain_misfit(theta0 + h * e) - plain_misfit(theta0 - h * e)) / (2 * h) for e in np.eye(2)]
    assert np.abs(grad).min() > 1e-4  # zero if the gradient does not reach node_scalar
    np.testing.assert_allclose(grad, fd, rtol=0.05, atol=5e-5)


def test_gradient_recovers_scalars_when_the_forward_map_is_the_model(tiny_model):
    """Observations made by the model itself at known coefficients: Adam finds them again."""
    rng = np.random.default_rng(2)
    obs = _obs(rng, n_ic=4, n_t=5, n_x=5)
    names = ["a", "b"]
    build = text_template("u_t + a*u_x + b*u = 0", names, X)
    truth = np.array([1.1, -0.6])
    obs.u[:] = _plain_predictions(tiny_model, build(truth), obs)
    inv = ScalarInversion(tiny_model, build, names, obs)
    start = inv.misfit_numpy(np.zeros((1, 2)))[0]
    res = recover_gradient(inv, -3, 3, num_starts=4, num_steps=150, lr=0.05, seed=0)
    assert res.misfit < 0.02 * start
    assert np.abs(res.values - truth).max() < 0.1


def test_field_gradient_flows_through_function_values(tiny_model):
    rng = np.random.default_rng(3)
    obs = _obs(rng)
    prob_params = make_problem(5, "field", num_ics=2).params

    def build(s):
        return params_to_pde(replace(prob_params, source=s, u0=obs.ic[0]), X)

    obs.u[:] = _plain_predictions(tiny_model, build(prob_params.source), obs)
    s0 = prob_params.source + 0.3 * np.sin(2 * np.pi * X)

    from foundry.pde.inverse.field import field_row

    graph, row = field_row(build, X, tiny_model.config.num_mod, tiny_model.graph_sizes)
    sur = Surrogate(tiny_model, graph, obs.ic, obs.coords())
    s = torch.tensor(s0[None], dtype=torch.float32, requires_grad=True)
    lab = torch.as_tensor(obs.u.reshape(3, -1), dtype=torch.float32)
    sur.misfit(sur.scalar_base[None], lab, {row: s}).sum().backward()
    # directional derivative along the gradient itself vs the plain model (0 if no gradient flows)
    g = s.grad[0].double().numpy()
    d = g / np.linalg.norm(g)
    auto = float(g @ d)

    def plain(sv):
        pred = torch.stack(
            [_model_prediction(tiny_model, build(sv), obs.ic[i], obs.coords()[i]) for i in range(3)]
        )
        lab64 = lab.double()
        return float(
            torch.mean(torch.sqrt(((pred - lab64) ** 2).mean(1)) / (torch.sqrt((lab64**2).mean(1)) + 0.05))
        )

    fd = (plain(s0 + 0.1 * d) - plain(s0 - 0.1 * d)) / 0.2
    assert auto > 1e-6  # exactly 0 if the gradient does not reach function_values
    assert auto == pytest.approx(fd, rel=0.05)
    res = recover_field(tiny_model, build, obs, num_steps=5, lr=0.05, reg_kind="smooth")
    assert res.values.shape == (128,) and res.history[-1] <= res.history[0]
    with pytest.raises(ValueError, match="regulariser"):
        recover_field(tiny_model, build, obs, num_steps=1, reg_kind="tv")


# -- test problems and the solver baseline ----------------------------------------------------


def test_problems_are_seeded_and_observations_noisy_within_level():
    a, b = make_problem(3, num_ics=3), make_problem(3, num_ics=3)
    assert a.names == b.names and np.array_equal(a.u, b.u) and 1 <= len(a.names) <= 3
    np.testing.assert_allclose(a.u[:, 0], a.ics)
    assert np.all(get_scalars(a.params, a.names) != 0)
    np.testing.assert_array_equal(
        get_scalars(set_scalars(a.params, a.names, a.truth + 1), a.names), a.truth + 1
    )
    rng = np.random.default_rng(0)
    obs = observe(rng, a.u, a.ics, 0.05)
    clean = np.stack([a.u[i][np.ix_(obs.t_index[i], obs.x_index[i])] for i in range(3)])
    dev = np.abs(obs.u - clean).reshape(3, -1).max(1) / np.abs(clean).reshape(3, -1).max(1)
    assert np.all(dev <= 0.05 + 1e-12) and np.all(dev > 0.03)
    assert obs.u.shape == (3, 20, 20) and obs.t.min() > 0
    np.testing.assert_array_equal(observe(np.random.default_rng(0), a.u, a.ics, 0.0).u, clean)
    with pytest.raises(ValueError, match="noise level"):
        add_noise(rng, clean, -0.1)
    # the text description parses to the same graph as the symbolic member
    build = text_template(describe(a.params, a.names), list(a.names), X)
    g_text = build_graph(build(a.truth), 3)
    g_sym = build_graph(params_to_pde(replace(a.params, u0=np.zeros(128)), X), 3)
    np.testing.assert_array_equal(g_text.node_type, g_sym.node_type)
    np.testing.assert_allclose(g_text.node_scalar, g_sym.node_scalar, atol=1e-5)


def test_solver_misfit_small_at_truth_and_fourier_field():
    prob = make_problem(4, num_ics=3)
    obs = observe(np.random.default_rng(0), prob.u, prob.ics, 0.0)
    fn = _SolverMisfit(prob.params, obs, lambda p, th: set_scalars(p, prob.names, th))
    f = fn(np.stack([prob.truth, prob.truth + 0.5]))
    assert f[0] < 1e-6 < 1e-2 < f[1]  # the data's own solver and step, no noise
    c = np.array([0.2, 0.5, -0.3, 0.0, 0.1])
    np.testing.assert_allclose(
        fourier_field(c, X),
        0.2 + 0.5 * np.cos(np.pi * X) - 0.3 * np.sin(np.pi * X) + 0.1 * np.sin(2 * np.pi * X),
    )


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_demo_tiny(tiny_ckpt):
    args = ["pde", "invert", "--demo", "--num-ics", "3", "--pso-particles", "6", "--pso-generations", "2"]
    args += ["--gd-starts", "1", "--gd-steps", "2", "--checkpoint", str(tiny_ckpt), "--noise", "0.05"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "true:" in res.output and "pso:" in res.output and "gradient:" in res.output
    assert res.output.count("max abs error") == 2


def test_cli_file_mode_and_bad_input(tiny_ckpt, tmp_path):
    prob = make_problem(6, num_ics=3)
    obs = observe(np.random.default_rng(0), prob.u, prob.ics, 0.01)
    path = tmp_path / "obs.npz"
    save_observations(path, obs, prob.truth)
    eq, names = describe(prob.params, prob.names), ",".join(prob.names)
    base = ["pde", "invert", eq, "--unknowns", names, "--checkpoint", str(tiny_ckpt), "--method", "pso"]
    res = runner.invoke(app, [*base, "--obs", str(path), "--pso-particles", "4", "--pso-generations", "1"])
    assert res.exit_code == 0, res.output
    assert "pso:" in res.output and "gradient:" not in res.output and "max abs error" in res.output

    def err(args):
        r = runner.invoke(app, args)
        assert r.exit_code != 0 and "Traceback" not in r.output
        return " ".join(r.output.replace("│", " ").split())  # unwrap rich's error box

    np.savez(tmp_path / "missing.npz", t=obs.t, x=obs.x, ic=obs.ic)
    assert "lacks array(s) u_obs" in err([*base, "--obs", str(tmp_path / "missing.npz")])
    np.savez(tmp_path / "shape.npz", t=obs.t, x=obs.x, ic=obs.ic, u_obs=obs.u[:, :3])
    assert "u_obs must be" in err([*base, "--obs", str(tmp_path / "shape.npz")])
    bad_names = ",".join(["zz", *prob.names[1:]])
    assert "'zz' does not appear" in err([*base[:4], bad_names, *base[5:], "--obs", str(path)])
    assert "'truth' has" in err([*base[:4], prob.names[0], *base[5:], "--obs", str(path)])
    assert "either --obs" in err(["pde", "invert", "--checkpoint", str(tiny_ckpt)])
    assert "--method" in err([*base[:-1], "newton", "--obs", str(path)])
    assert "--checkpoint" in err([*base[:5], "--checkpoint", str(tmp_path / "none.pt"), "--obs", str(path)])


# -- the benchmarks' quick modes ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("script", ["inverse.py", "speed.py"])
def test_benchmark_quick(script, tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pde" / script), "--quick"], cwd=tmp_path,
        capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    stem, quick = script.removesuffix(".py"), tmp_path / "out" / "pde" / "quick"  # never docs/figures/pde
    assert (quick / f"{stem}_quick.json").exists() and (quick / f"{stem}_quick.md").exists()
    assert not (tmp_path / "docs").exists()
