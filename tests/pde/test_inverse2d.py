"""2-D inverse problems: the batched surrogate equals PDEformer.forward on 2-D graphs (two IC rows,
a field row), gradients w.r.t. a scalar and the field row match finite differences of the plain
model, PSO, observation sampling, the 2-D smoothness regulariser and the benchmark script."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from foundry.pde.checkpoint import save_checkpoint
from foundry.pde.data.dataset import graph_to_tensors
from foundry.pde.data.pde2d_builders import dcr_equation, wave_equations
from foundry.pde.graph.dag import GRAPH_KEYS, build_graph
from foundry.pde.graph.domain import Domain
from foundry.pde.graph.symbolic import PDE
from foundry.pde.inverse.field import field_row, recover_field, regulariser
from foundry.pde.inverse.problems2d import (
    ScatteredObservations,
    make_problem2d,
    observe2d,
    sample_indices,
    source_template,
    wave_template,
)
from foundry.pde.inverse.pso import PSOConfig, pso_minimize
from foundry.pde.inverse.scalar import ScalarInversion, recover_pso
from foundry.pde.inverse.surrogate import Surrogate
from foundry.pde.losses.nrmse import nrmse_per_sample
from foundry.pde.models.pdeformer import NUM_NODE_TYPES_V2, PDEformer, PDEformerConfig

ROOT = Path(__file__).resolve().parents[2]
G = 32
TINY2 = PDEformerConfig(
    d_model=32, num_layers=2, num_heads=4, ffn_dim=32, inr_hidden=16, inr_layers=3,
    scalar_hidden=32, hypernet_hidden=16, num_node_types=NUM_NODE_TYPES_V2, num_coords=3,
    function_encoder="cnn", function_grid=G, inr_activation="sin", final_norm=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PDEformer(TINY2).eval()


def _fields(n_ic: int, seed: int = 0) -> np.ndarray:
    """(n_ic, G*G) smooth periodic fields."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(G) / G, np.arange(G) / G, indexing="ij")
    out = []
    for _ in range(n_ic):
        a, b, c = rng.uniform(-1, 1, 3)
        out.append(a * np.sin(2 * np.pi * x) + b * np.cos(2 * np.pi * y) + c * np.sin(2 * np.pi * (x + y)))
    return np.stack(out).reshape(n_ic, -1)


def _obs(n_ic: int, rows: int, q: int = 7, seed: int = 0) -> ScatteredObservations:
    rng = np.random.default_rng(seed)
    ic = _fields(n_ic * rows, seed).reshape(n_ic, rows, -1)
    ic = ic[:, 0] if rows == 1 else ic
    return ScatteredObservations(ic, rng.uniform(0, 1, (n_ic, q, 3)), np.zeros((n_ic, q)))


def _wave_pde(c2: float, mu: float, u0: np.ndarray, v0: np.ndarray) -> PDE:
    pde = PDE(domain=Domain.square(periodic=True), resolution=G)
    u, v = pde.unknown("u"), pde.unknown("v")
    pde.ic(u, u0)
    pde.ic(v, v0)
    wave_equations(pde, u, v, mu, c2, None)
    return pde


def _source_pde(s: np.ndarray, u0: np.ndarray, a: float = 5e-3) -> PDE:
    pde = PDE(domain=Domain.square(periodic=True), resolution=G)
    u = pde.unknown("u")
    pde.ic(u, u0)
    dcr_equation(pde, u, a, [0.0] * 3, [0.0] * 3, [0.0] * 3, s)
    return pde


def _plain(model, pde: PDE, coords: np.ndarray) -> torch.Tensor:
    g = build_graph(pde, model.config.num_mod, model.graph_sizes)
    arrays = graph_to_tensors({k: getattr(g, k)[None] for k in GRAPH_KEYS})
    with torch.no_grad():
        return model(arrays, torch.as_tensor(coords[None], dtype=torch.float32))[0].double()


def _wave_plain(model, theta, obs) -> torch.Tensor:
    return torch.stack(
        [_plain(model, _wave_pde(*theta, *obs.ic[i]), obs.coords()[i]) for i in range(len(obs.ic))]
    )


def _misfit(pred: torch.Tensor, obs) -> float:
    return float(nrmse_per_sample(pred, torch.as_tensor(obs.u, dtype=pred.dtype)).mean())


def test_surrogate_equals_forward_on_2d_graphs(model):
    """Two IC rows (u0, v0) per IC and a batch of candidates: the batched path is PDEformer.forward."""
    obs = _obs(3, 2)
    inv = ScalarInversion(model, wave_template(("c2", "mu"), {}), ["c2", "mu"], obs)
    assert inv.surrogate.num_ic_rows == 2
    thetas = np.array([[0.8, 0.2], [2.5, 0.7]])
    pred = inv.surrogate.predict(inv.node_scalar(torch.tensor(thetas, dtype=torch.float32)))
    for s, th in enumerate(thetas):
        ref = _wave_plain(model, th, obs)
        np.testing.assert_allclose(pred[s].double().numpy(), ref.numpy(), atol=1e-5)
    # a field row: the source of a DCR, replaced by candidate values
    obs1 = _obs(2, 1, seed=1)
    build = source_template(5e-3)
    graph, row = field_row(build, np.linspace(-1, 1, G * G), model.config.num_mod, model.graph_sizes)
    assert row == 1
    sur = Surrogate(model, graph, obs1.ic, obs1.coords())
    s = _fields(1, seed=5)
    got = sur.predict(sur.scalar_base[None], {row: torch.tensor(s, dtype=torch.float32)})[0]
    for i in range(2):
        ref = _plain(model, _source_pde(s[0], obs1.ic[i]), obs1.coords()[i])
        np.testing.assert_allclose(got[i].double().numpy(), ref.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="coords"):
        Surrogate(model, graph, obs1.ic, obs1.coords()[..., :2])


def test_scalar_gradient_matches_finite_differences_2d(model):
    obs = _obs(2, 2, seed=2)
    obs.u[:] = _wave_plain(model, (1.3, 0.4), obs).numpy()
    inv = ScalarInversion(model, wave_template(("c2", "mu"), {}), ["c2", "mu"], obs)
    theta0 = np.array([0.7, 0.6])
    theta = torch.tensor(theta0[None], dtype=torch.float32, requires_grad=True)
    inv.misfit(theta).sum().backward()
    grad = theta.grad[0].double().numpy()
    h = 1e-2
    fd = [
        (
            _misfit(_wave_plain(model, theta0 + h * e, obs), obs)
            - _misfit(_wave_plain(model, theta0 - h * e, obs), obs)
        )
        / (2 * h)
        for e in np.eye(2)
    ]
    assert np.abs(grad).min() > 1e-5  # zero if the gradient does not reach node_scalar
    np.testing.assert_allclose(grad, fd, rtol=0.05, atol=5e-5)


def test_field_gradient_matches_finite_differences_2d(model):
    obs = _obs(2, 1, seed=3)
    truth = _fields(1, seed=7)[0]
    obs.u[:] = torch.stack(
        [_plain(model, _source_pde(truth, obs.ic[i]), obs.coords()[i]) for i in range(2)]
    ).numpy()
    build = source_template(5e-3)
    graph, row = field_row(build, np.linspace(-1, 1, G * G), model.config.num_mod, model.graph_sizes)
    sur = Surrogate(model, graph, obs.ic, obs.coords())
    s0 = 0.5 * truth
    s = torch.tensor(s0[None], dtype=torch.float32, requires_grad=True)
    lab = torch.as_tensor(obs.u, dtype=torch.float32)
    sur.misfit(sur.scalar_base[None], lab, {row: s}).sum().backward()
    g = s.grad[0].double().numpy()
    d = g / np.linalg.norm(g)

    def plain(sv):
        pred = torch.stack([_plain(model, _source_pde(sv, obs.ic[i]), obs.coords()[i]) for i in range(2)])
        return _misfit(pred, obs)

    fd = (plain(s0 + 0.05 * d) - plain(s0 - 0.05 * d)) / 0.1
    assert float(g @ d) > 1e-6  # exactly 0 if the gradient does not reach the field row
    assert float(g @ d) == pytest.approx(fd, rel=0.05)
    res = recover_field(
        model, build, obs, num_steps=4, lr=0.05, reg_weight=1e-4, reg_kind="smooth", truth=truth
    )
    assert res.values.shape == (G * G,) and res.rel_l2 is not None and np.isfinite(res.misfit)


def test_smooth_regulariser_2d_takes_both_axes():
    v = torch.zeros(1, 16)
    v[0, :4] = 1.0  # first grid row of a 4 x 4 grid: constant along y, a step along x
    assert float(regulariser(v, "smooth", (4, 4))) == 8.0  # 4 columns x 2 jumps along x, none along y
    assert float(regulariser(v, "smooth")) == 2.0  # the 1-D reading of the flat vector
    with pytest.raises(ValueError, match="grid_shape"):
        regulariser(v, "smooth", (3, 3))


def test_pso_on_a_synthetic_objective_and_on_the_model(model):
    res = pso_minimize(
        lambda x: ((x - [1.5, 0.3]) ** 2).sum(1),
        np.array([0.0, 0.0]),
        np.array([4.0, 1.0]),
        PSOConfig(32, 40),
    )
    assert np.allclose(res.x, [1.5, 0.3], atol=1e-2)
    obs = _obs(2, 2, seed=4)
    obs.u[:] = _wave_plain(model, (1.3, 0.4), obs).numpy()
    inv = ScalarInversion(model, wave_template(("c2", "mu"), {}), ["c2", "mu"], obs)
    out = recover_pso(inv, [0.01, 0.0], [4.0, 1.0], PSOConfig(16, 6))
    assert out.num_model_passes == 16 * 7 * 2
    assert out.misfit == pytest.approx(inv.misfit_numpy(out.values[None])[0], rel=1e-4, abs=1e-6)
    assert np.all(out.values >= [0.01, 0.0]) and np.all(out.values <= [4.0, 1.0])


def test_observations_lie_inside_the_domain():
    rng = np.random.default_rng(0)
    idx = sample_indices(rng, 3, 50, 101, 64)
    assert idx.shape == (3, 50, 3)
    assert idx[..., 0].min() >= 1 and idx[..., 0].max() <= 100 and idx[..., 1:].max() <= 63
    assert all(len({tuple(p) for p in idx[b]}) == 50 for b in range(3))  # distinct per IC
    u = rng.normal(size=(3, 101, 64, 64))
    obs = observe2d(rng, u, rng.normal(size=(3, G * G)), noise=0.0, num_points=50)
    assert obs.points[..., 0].min() > 0 and obs.points[..., 0].max() <= 1
    assert obs.points[..., 1:].min() >= 0 and obs.points[..., 1:].max() < 1
    i = np.rint(obs.points[0, 0] * [100, 64, 64]).astype(int)
    assert obs.u[0, 0] == u[0, i[0], i[1], i[2]]
    with pytest.raises(ValueError, match="domain"):
        ScatteredObservations(np.zeros((1, 4)), np.array([[[0.5, 1.2, 0.3]]]), np.zeros((1, 1)))
    p = make_problem2d("wave", seed=1, num_ics=2, num_points=20, noise=0.01)
    assert p.obs.ic.shape == (2, 2, G * G) and np.all(p.obs.ic[:, 1] == 0)  # v0 = 0 stays exact
    assert np.all(p.lower <= p.truth) and np.all(p.truth <= p.upper)


def test_benchmark_script_runs(model, tmp_path, capsys):
    ckpt = tmp_path / "tiny2d.pt"
    save_checkpoint(ckpt, model, {"step": 0})
    spec = importlib.util.spec_from_file_location("inverse2d", ROOT / "benchmarks/pde/inverse2d.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "r.json"
    argv = ["--checkpoint", str(ckpt), "--tiny", "--num-ics", "2", "--num-points", "20", "--json", str(out)]
    bench.main([*argv, "--set", "gd_steps=1"])
    rows = json.loads(out.read_text())["rows"]
    assert [(r["problem"], r["method"]) for r in rows] == [
        ("wave", "pso"),
        ("wave", "gradient"),
        ("dcr", "pso"),
        ("dcr", "gradient"),
        ("source", "gradient"),
    ]
    assert all(np.isfinite(r["misfit"]) for r in rows) and rows[-1]["rel_l2"] >= 0
    text = capsys.readouterr().out
    assert (
        "| wave | pso |" in text and "reproduce: OMP_NUM_THREADS=1 python benchmarks/pde/inverse2d.py" in text
    )
    with pytest.raises(SystemExit):
        bench.main(["--checkpoint", str(ckpt), "--problems", "heat"])
