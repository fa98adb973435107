"""2-D prediction: the reference solver reads text PDEs back correctly; the CLI writes arrays and figures."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from foundry.cli import app
from foundry.pde.checkpoint import save_checkpoint
from foundry.pde.data import spectral2d
from foundry.pde.data.reference2d import _fine, read_boundary, read_dcr, read_wave, solve_reference2d
from foundry.pde.data.symbolic_solver import UnsupportedPDE
from foundry.pde.graph.parser import parse_pde2d
from foundry.pde.inference import default_checkpoint, predict_grid
from foundry.pde.models.pdeformer import build_model

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck2d") / "tiny2d.pt"
    save_checkpoint(path, build_model("2-XS"), {"step": 0})
    return path


def test_dcr_coefficients_are_read_back_from_text():
    pde = parse_pde2d(
        "2*u_t - 0.02*(u_xx + u_yy) + 0.4*u - u^3 + 0.6*(u^2)_x - (0.2*u)_y + sin(2*pi*x) + 0.5 = 0",
        "cos(2*pi*y)",
    )
    f = read_dcr(pde)
    assert f.a == pytest.approx(0.01)
    np.testing.assert_allclose(f.c0, [0.2, 0.0, -0.5])
    np.testing.assert_allclose(f.c1, [0.0, 0.3, 0.0])
    np.testing.assert_allclose(f.c2, [-0.1, 0.0, 0.0])
    np.testing.assert_allclose(f.source, 0.5 * np.sin(2 * np.pi * pde.points[:, 0]) + 0.25, atol=1e-12)


def test_boundary_and_wave_forms_are_read_back():
    pde = parse_pde2d(
        ["u_t - v = 0", "v_t + 0.3*v - 2*(u_xx + u_yy) = 0"],
        ["sin(pi*x)", "0"],
        "square",
        [
            "left: u_t + 1.5*u_n = 0",
            "right: u = 0.2",
            "bottom: 2*u + 0.5*u_n = 1",
            "top: u_n = 0",
            "*: v = 0",
        ],
        "u,v",
    )
    w = read_wave(pde)
    assert (w.c2, w.mu, w.source) == (pytest.approx(2.0), pytest.approx(0.3), None)
    u = pde.unknowns[0]
    assert vars(read_boundary(pde, u, "left")) == {"gamma": 1.0, "alpha": 0.0, "beta": 1.5, "c": 0.0}
    assert vars(read_boundary(pde, u, "right")) == {"gamma": 0.0, "alpha": 1.0, "beta": 0.0, "c": -0.2}
    assert vars(read_boundary(pde, u, "bottom")) == {"gamma": 0.0, "alpha": 2.0, "beta": 0.5, "c": -1.0}


def test_periodic_reference_equals_the_family_solver_and_a_closed_form():
    """Heat on the periodic square: u = exp(-8 pi^2 a t) sin(2 pi x) sin(2 pi y)."""
    a = 0.01
    pde = parse_pde2d(f"u_t - {a}*(u_xx + u_yy) = 0", "sin(2*pi*x)*sin(2*pi*y)", resolution=16)
    ref = solve_reference2d(pde, num_t=5)
    xx, yy = np.meshgrid(ref["x"], ref["y"], indexing="ij")
    exact = (
        np.exp(-8 * np.pi**2 * a * ref["t"])[:, None, None] * np.sin(2 * np.pi * xx) * np.sin(2 * np.pi * yy)
    )
    np.testing.assert_allclose(ref["u"], exact, atol=2e-4)
    # the same member through the family solver directly, on the 2x grid
    x2, y2 = spectral2d.grid(32)
    u0 = (torch.sin(2 * np.pi * x2) * torch.sin(2 * np.pi * y2))[None]
    z = torch.zeros(1, 3, dtype=torch.float64)
    u, ok = spectral2d.solve_dcr(u0, torch.tensor([a], dtype=torch.float64), z, z, z, num_t=5)
    np.testing.assert_allclose(ref["u"], u[0, :, ::2, ::2].numpy(), atol=1e-12)


def test_unsupported_terms_are_named():
    pde = parse_pde2d("u_t + u*u_x - 0.01*(u_xx + u_yy) = 0", "sin(2*pi*x)")
    with pytest.raises(UnsupportedPDE, match="outside the DCR form"):
        solve_reference2d(pde)
    pde = parse_pde2d("u_t - 0.01*u_xx - 0.02*u_yy = 0", "sin(2*pi*x)")
    with pytest.raises(UnsupportedPDE, match="anisotropic"):
        solve_reference2d(pde)
    # a field-valued Robin coefficient is in the graph, but the solvers take scalar coefficients
    pde = parse_pde2d("u_t - 0.01*(u_xx + u_yy) = 0", "x", "disk:0.4", ["circle: (1 + 0.5*x)*u + u_n = 0"])
    with pytest.raises(UnsupportedPDE, match=r"s\(x\) \* u on 'circle' is not solved"):
        solve_reference2d(pde)


def test_cli_predicts_a_disk_with_robin_boundary(ckpt, tmp_path):
    out = tmp_path / "d.npz"
    res = runner.invoke(
        app,
        [
            "pde", "predict", "u_t - 0.01*(u_xx + u_yy) = 0", "--ic", "exp(-20*((x-0.5)^2+(y-0.5)^2))",
            "--domain", "disk:0.4", "--bc", "circle: u + 0.5*u_n = 0", "--checkpoint", str(ckpt),
            "--out", str(out), "--nt", "6", "--nx", "24", "--animate",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    arrays = np.load(out)
    assert arrays["u"].shape == (6, 24, 24) and np.isfinite(arrays["u"]).all()
    inside = np.hypot(arrays["x"][:, None] - 0.5, arrays["y"][None, :] - 0.5) <= 0.4
    np.testing.assert_array_equal(arrays["mask"], inside)
    assert out.with_suffix(".png").stat().st_size > 0 and out.with_suffix(".gif").stat().st_size > 0
    # the arrays are the library's prediction
    model = build_model("2-XS")
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    model.eval()
    pde = parse_pde2d(
        "u_t - 0.01*(u_xx + u_yy) = 0", "exp(-20*((x-0.5)^2+(y-0.5)^2))", "disk:0.4",
        ["circle: u + 0.5*u_n = 0"], resolution=model.config.function_grid,
    )  # fmt: skip
    direct = predict_grid(model, pde, [arrays["t"], arrays["x"], arrays["y"]])
    np.testing.assert_allclose(arrays["u"], direct, atol=1e-5)


def test_cli_reference_reports_the_error_inside_the_domain(ckpt, tmp_path):
    out = tmp_path / "r.npz"
    res = runner.invoke(
        app,
        [
            "pde", "predict", "u_t - 0.01*(u_xx + u_yy) = 0", "--ic", "exp(-20*((x-0.5)^2+(y-0.5)^2))",
            "--domain", "disk:0.4", "--bc", "circle: u = 0", "--checkpoint", str(ckpt), "--out", str(out),
            "--nt", "5", "--reference", "--no-plot",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    a = np.load(out)
    m = a["mask"][None]
    rel = np.linalg.norm((a["u"] - a["u_ref"]) * m) / np.linalg.norm(a["u_ref"] * m)
    assert f"(inside): {rel:.4f}" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["u_t - 0.01*(u_xx + u_yy) = 0", "--ic", "x", "--domain", "disk"], "needs a boundary condition"),
        (["u_t - 0.01*(u_xx + u_yy) = 0", "--ic", "x", "--domain", "moon"], "unknown domain"),
        (["u_t - u_xx = 0", "--ic", "x", "--bc", "top: u = 0"], "no boundary 'top'"),
        (["u_t - 0.01*(u_xx + u_yy) = 0", "--ic", "x", "--target", "1"], "--target 1"),
    ],
)
def test_cli_2d_errors_are_clean(ckpt, args, message, tmp_path):
    res = runner.invoke(
        app, ["pde", "predict", *args, "--checkpoint", str(ckpt), "--out", str(tmp_path / "e.npz")]
    )
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_a_1d_checkpoint_refuses_a_2d_pde(tmp_path):
    one_d = str(default_checkpoint())
    res = runner.invoke(
        app,
        ["pde", "predict", "u_t - 0.01*(u_xx + u_yy) = 0", "--ic", "x", "--checkpoint", one_d,
         "--out", str(tmp_path / "e.npz")],
    )  # fmt: skip
    assert res.exit_code == 2 and "2-D PDE needs a 2-D checkpoint" in res.output


def test_disk_robin_reference_is_the_cut_cell_solver_on_that_member():
    """The text condition u + 0.5 u_n = 0.1 is u_n + 2 u - 0.2 = 0 for `fd2d.Disk`."""
    from foundry.pde.data import fd2d

    pde = parse_pde2d(
        "u_t - 0.01*(u_xx + u_yy) + 0.5*u = 0", "exp(-20*((x-0.5)^2+(y-0.5)^2))", "disk:0.4",
        ["circle: u + 0.5*u_n = 0.1"], resolution=16,
    )  # fmt: skip
    ref = solve_reference2d(pde, num_t=3)
    u0 = _fine(pde.initial[0].values, 16, periodic=False)[None]  # the IC carried to the 31-node grid
    one = torch.ones(1, dtype=torch.float64)
    disk = fd2d.Disk(0.4 * one, 0 * one, 2.0 * one, -0.2 * one, torch.zeros(1, dtype=torch.bool))
    z = torch.zeros(1, 3, dtype=torch.float64)
    c0 = torch.tensor([[0.5, 0.0, 0.0]], dtype=torch.float64)
    u, ok = fd2d.solve_dcr_disk(u0, disk, 0.01 * one, c0, z, z, num_t=3, dt=1e-3)
    inside = ref["mask"][None]
    np.testing.assert_allclose(ref["u"] * inside, u[0, :, ::2, ::2].numpy() * inside, atol=1e-9)
    assert ok[0] and 0.3 < inside.mean() < 0.7


def test_eval_scores_2d_files_and_refuses_a_1d_checkpoint(ckpt, tmp_path):
    from foundry.pde.data.generate2d import generate2d
    from foundry.pde.data.generate2d_config import Generate2DConfig

    data = tmp_path / "w.h5"
    generate2d(
        Generate2DConfig(family="wave-periodic", num_samples=3, num_t=3, chunk_size=4), data, progress=False
    )
    ok = runner.invoke(app, ["pde", "eval", "--data", str(data), "--checkpoint", str(ckpt)])
    assert ok.exit_code == 0 and "3 samples: mean rel-L2" in ok.output
    bad = runner.invoke(app, ["pde", "eval", "--data", str(data), "--checkpoint", str(default_checkpoint())])
    assert bad.exit_code == 2 and "1-D model" in bad.output and "2-D data" in bad.output


def test_the_shipped_2d_checkpoint_loads_and_predicts_the_readme_example():
    from foundry.pde.inference import default_checkpoint2d, load_model
    from foundry.pde.models.pdeformer import PRESETS, preset_name

    path = default_checkpoint2d()
    assert path.stat().st_size <= 20 * 2**20
    model, meta = load_model(path)
    assert preset_name(meta["model_config"]) == "2-XS" and model.config == PRESETS["2-XS"]
    pde = parse_pde2d(
        "u_t - 0.01*(u_xx + u_yy) + 0.5*u^2 = 0", "exp(-20*((x-0.5)^2 + (y-0.5)^2))", "disk:0.4",
        ["circle: u + 0.5*u_n = 0.1"], resolution=model.config.function_grid,
    )  # fmt: skip
    u = predict_grid(model, pde, [np.linspace(0, 1, 3), np.linspace(0, 1, 8), np.linspace(0, 1, 8)])
    assert u.shape == (3, 8, 8) and np.isfinite(u).all()


def test_steady_references_with_field_boundary_values_match_closed_forms():
    """Harmonic functions with their own boundary data: exp(pi x/2) sin(pi y/2) with Dirichlet field
    data on every edge of the square, and (x-1/2)^2 - (y-1/2)^2 on a disk of radius R with the Robin
    field u + u_n = (1 + 2/R) u (on the circle u_n = 2u/R). The square's error falls at second order;
    the disk's cut-cell Robin scheme is not monotone in the max norm (where the circle cuts the grid
    matters, docs/pde2.md), so it gets a bound."""
    exact_sq = "exp(pi*x/2)*sin(pi*y/2)"
    errs = {"square": [], "disk": []}
    for g in (17, 33):
        pde = parse_pde2d("-(u_xx + u_yy) = 0", (), "square", [f"*: u = {exact_sq}"], resolution=g)
        r = solve_reference2d(pde)
        assert r["t"].tolist() == [0.0] and r["u"].shape == (1, g, g)
        x, y = np.meshgrid(r["x"], r["y"], indexing="ij")
        errs["square"].append(np.abs(r["u"][0] - np.exp(np.pi * x / 2) * np.sin(np.pi * y / 2)).max())
        radius = 0.35
        q = "((x-0.5)^2 - (y-0.5)^2)"
        pde = parse_pde2d(
            "-(u_xx + u_yy) = 0",
            (),
            f"disk:{radius}",
            [f"circle: u + u_n = {1 + 2 / radius}*{q}"],
            resolution=g,
        )
        r = solve_reference2d(pde)
        exact = (x - 0.5) ** 2 - (y - 0.5) ** 2
        errs["disk"].append(np.abs((r["u"][0] - exact) * r["mask"]).max())
    assert errs["square"][1] < 0.33 * errs["square"][0] and errs["square"][1] < 1e-3
    assert max(errs["disk"]) < 2e-3  # max |u| = R^2 = 0.12


def test_cli_predicts_a_steady_problem_at_t_0_with_its_reference(ckpt, tmp_path):
    out = tmp_path / "s.npz"
    res = runner.invoke(
        app,
        [
            "pde", "predict", "u + 0.3*u_x - 0.1*(u_xx + u_yy) = sin(2*pi*x)*cos(2*pi*y)",
            "--domain", "disk:0.4", "--bc", "circle: u + 0.5*u_n = 0.1*cos(pi*x)", "--checkpoint", str(ckpt),
            "--out", str(out), "--reference",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    a = np.load(out)
    assert a["t"].tolist() == [0.0] and a["u"].shape == a["u_ref"].shape == (1, 32, 32)
    bad = runner.invoke(
        app,
        ["pde", "predict", "u - (u_xx + u_yy) = 1", "--ic", "x", "--checkpoint", str(ckpt),
         "--out", str(tmp_path / "e.npz")],
    )  # fmt: skip
    assert bad.exit_code == 2 and "time-independent" in bad.output


def test_wave_disk_mur_reference_is_the_cut_cell_leapfrog():
    """The text condition u_t + 0.8 u_n = 0 (c2 = 0.64) is `fd2d.Disk.from_mur` with gamma = 1/0.8, solved
    by `fd2d.solve_wave_disk` on the 2G - 1 node grid with the reference's CFL step."""
    from foundry.pde.data import fd2d

    ic = "exp(-40*((x-0.45)^2+(y-0.5)^2))"
    pde = parse_pde2d(
        ["u_t - v = 0", "v_t - 0.64*(u_xx + u_yy) = 0"], [ic, "0"], "disk:0.4",
        ["circle: u_t + 0.8*u_n = 0", "circle: v_t + 0.8*v_n = 0"], unknowns="u,v", resolution=12,
    )  # fmt: skip
    ref = solve_reference2d(pde, num_t=3)
    u0 = _fine(pde.initial[0].values, 12, periodic=False)[None]
    one = torch.ones(1, dtype=torch.float64)
    disk = fd2d.Disk.from_mur(0.4 * one, 0 * one, 0.8 * one, 0 * one)
    h = 1 / 22
    steps = int(np.ceil(0.5 / (0.5 * h / 0.8)))
    u, ok = fd2d.solve_wave_disk(
        u0, torch.zeros_like(u0), disk, 0.64 * one, 0 * one, None, num_t=3, dt=0.5 / steps
    )
    inside = ref["mask"][None]
    np.testing.assert_allclose(ref["u"] * inside, u[0, :, ::2, ::2].numpy() * inside, atol=1e-9)
    assert ok[0] and np.abs(ref["u"][-1] * inside[0]).max() > 0.01
