"""`foundry pde ...` end to end on tiny data; errors are clean messages, not tracebacks."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from foundry.cli import app
from foundry.pde.checkpoint import save_checkpoint
from foundry.pde.graph.parser import parse_pde
from foundry.pde.inference import default_checkpoint, load_model, predict
from foundry.pde.models.pdeformer import build_model

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "xs.pt"
    save_checkpoint(path, build_model("XS"), {"step": 0})
    return path


def test_predict_writes_arrays_and_plot(ckpt, tmp_path):
    out = tmp_path / "u.npz"
    res = runner.invoke(
        app,
        [
            "pde",
            "predict",
            "u_t + (0.5*u^2)_x - 0.01*u_xx = 0",
            "--ic",
            "sin(pi*x)",
            "--out",
            str(out),
            "--checkpoint",
            str(ckpt),
            "--nt",
            "11",
            "--nx",
            "40",
            "--reference",
        ],
    )
    assert res.exit_code == 0, res.output
    z = np.load(out)
    assert z["u"].shape == (11, 40) and z["t"].shape == (11,) and z["x"].shape == (40,)
    assert z["u_ref"].shape == (101, 128) and np.allclose(z["u_ref"][0], np.sin(np.pi * z["x_ref"]))
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "relative L2" in res.output


def test_predict_arbitrary_points_match_library(ckpt, tmp_path):
    out = tmp_path / "p.npz"
    res = runner.invoke(
        app,
        [
            "pde",
            "predict",
            "u_t + u_x = 0",
            "--ic",
            "cos(pi*x)",
            "--out",
            str(out),
            "--checkpoint",
            str(ckpt),
            "--t-points",
            "0,0.25,1",
            "--x-points",
            "-1,0.3",
            "--no-plot",
        ],
    )
    assert res.exit_code == 0, res.output
    model, _ = load_model(ckpt)
    direct = predict(
        model, parse_pde("u_t + u_x = 0", "cos(pi*x)"), np.array([0, 0.25, 1]), np.array([-1, 0.3])
    )
    np.testing.assert_allclose(np.load(out)["u"], direct, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["u_t + u_q = 0", "--ic", "x"], "'_q'"),
        (["u_t + u_x = 0", "--ic", "sin(pi*y)"], "'y' at position 7"),
        (["u_t + u_x = 0", "--ic", "x", "--t-points", "0,2"], "--t-points"),
        (["u_t + u_x = 0", "--ic", "x", "--checkpoint", "/nonexistent.pt"], "not found"),
        # non-finite or singular fields and initial conditions name the function and the point
        (["u_t + u/x = 0", "--ic", "sin(pi*x)"], "field 1/x is not finite: inf at x = 0"),
        (["u_t + sqrt(x)*u_x = 0", "--ic", "sin(pi*x)"], "field sqrt(x) is not finite: nan at x = -1"),
        (["u_t + u_x = 0", "--ic", "1/x"], "initial condition '1/x' is not finite: inf at x = 0"),
        (
            ["u_t + 1e400*u_x = 0", "--ic", "sin(pi*x)"],
            "overflows double precision (largest ~1.8e308): '1e400'",
        ),
        (["u_t + exp(1000)*u_x = 0", "--ic", "sin(pi*x)"], "a coefficient evaluates to inf"),
        # the missing ')' is blamed, not the '_x' the parser would trip over later
        (["(0.5*u^2_x = 0", "--ic", "sin(pi*x)"], "'(' is never closed (missing ')'): '(' at position 0"),
        (["u_t + (0.5*u^2_x = 0", "--ic", "sin(pi*x)"], "never closed (missing ')'): '(' at position 6"),
        (["u_t + u_x) = 0", "--ic", "x"], "')' without a matching '(': ')' at position 9"),
    ],
)
def test_predict_errors_are_clean(args, message, tmp_path):
    res = runner.invoke(app, ["pde", "predict", *args, "--out", str(tmp_path / "e.npz")])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_generate_and_eval_commands(ckpt, tmp_path):
    data = tmp_path / "d.h5"
    res = runner.invoke(
        app,
        [
            "pde",
            "generate",
            "--out",
            str(data),
            "--num-samples",
            "3",
            "--num-x",
            "32",
            "--num-t",
            "6",
            "--dt",
            "1e-3",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["pde", "eval", "--data", str(data), "--checkpoint", str(ckpt)])
    assert res.exit_code == 0, res.output
    assert "3 samples: mean rel-L2" in res.output
    robin = tmp_path / "r.h5"
    res = runner.invoke(
        app,
        [
            "pde",
            "generate",
            "--out",
            str(robin),
            "--num-samples",
            "2",
            "--num-x",
            "32",
            "--num-t",
            "6",
            "--dt",
            "1e-3",
            "--boundary",
            "robin",
            "--coef-range",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    import h5py

    with h5py.File(robin, "r") as f:
        assert f.attrs["family"] == "sinus0-robin" and f.attrs["coef_range"] == 1.0
    res = runner.invoke(app, ["pde", "generate", "--out", str(data), "--num-x", "33"])
    assert res.exit_code == 2 and "num_x must be even" in res.output
    res = runner.invoke(app, ["pde", "train", "--train-data", str(data), "--model-size", "XXL"])
    assert res.exit_code == 2 and "--model-size" in res.output


def test_shipped_checkpoint_loads():
    assert default_checkpoint().exists()
    model, meta = load_model()
    assert model.config.num_mod == 3 and meta["rel_l2"] < 1.0


# -- the README chain: train without a test set, Ctrl-C, default paths ---------------------------


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    from foundry.pde.data.generate import GenerateConfig, generate

    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    generate(GenerateConfig(num_samples=4, num_x=32, num_t=6, dt=1e-3, chunk_size=8), path, progress=False)
    return path


def tiny_train(data, out_dir, max_steps):
    return ["pde", "train", "--train-data", str(data), "--out-dir", str(out_dir),
            "--max-steps", str(max_steps), "--batch-size", "2", "--num-query-points", "32",
            "--warmup-steps", "0", "--device", "cpu"]  # fmt: skip


def flat(output: str) -> str:
    return " ".join(output.replace("│", " ").split())  # unwrap rich's error box, if any


def test_train_without_test_data_writes_best_for_eval(tiny_h5, tmp_path):
    """README: `train` (no --test-data) then `eval --checkpoint run/best.pt` works."""
    res = runner.invoke(app, tiny_train(tiny_h5, tmp_path / "run", 3))
    assert res.exit_code == 0, res.output
    assert "no --test-data: best.pt will hold the final weights" in res.output
    assert "done: step 3, no held-out set" in res.output
    _, meta = load_model(tmp_path / "run" / "best.pt")
    assert meta["step"] == 3 and meta["rel_l2"] is None
    best = tmp_path / "run" / "best.pt"
    res = runner.invoke(app, ["pde", "eval", "--data", str(tiny_h5), "--checkpoint", str(best)])
    assert res.exit_code == 0, res.output
    assert "4 samples: mean rel-L2" in res.output


def test_train_ctrl_c_saves_and_exits_130(tiny_h5, tmp_path, monkeypatch):
    """A KeyboardInterrupt at step 2 (raised by the progress observer, as Ctrl-C would arrive)."""
    import foundry.pde.training.train as training

    real = training.train

    def interrupted_at_step_2(cfg, on_step=None):
        def hook(step, metrics):
            on_step(step, metrics)
            if step == 2:
                raise KeyboardInterrupt

        return real(cfg, on_step=hook)

    monkeypatch.setattr(training, "train", interrupted_at_step_2)
    run = tmp_path / "run"
    res = runner.invoke(app, tiny_train(tiny_h5, run, 50))
    assert res.exit_code == 130, res.output
    assert "Traceback" not in res.output and "Aborted" not in res.output
    assert f"interrupted: saved last.pt and best.pt at step 2 in {run}" in flat(res.output)
    assert load_model(run / "last.pt")[1]["step"] == 2 and load_model(run / "best.pt")[1]["step"] == 2
    monkeypatch.setattr(training, "train", real)
    res = runner.invoke(app, tiny_train(tiny_h5, run, 4))  # the same command resumes
    assert res.exit_code == 0 and "done: step 4" in res.output, res.output


def test_predict_writes_under_out_by_default(ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["u_t + u_x = 0", "--ic", "sin(pi*x)", "--checkpoint", str(ckpt), "--nt", "3", "--nx", "8"]
    res = runner.invoke(app, ["pde", "predict", *args, "--no-plot"])
    assert res.exit_code == 0, res.output
    files = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    assert files == ["out/pde/u.npz"]


# -- wrong files: one line naming the option and the file, exit 2 like typer's usage errors -------


@pytest.mark.parametrize(
    ("case", "option", "says"),
    [
        ("npz-as-checkpoint", "--checkpoint", "is not a PDEformer checkpoint (not a torch file"),
        ("missing-checkpoint", "--checkpoint", "not found"),
        ("corrupt-checkpoint", "--checkpoint", "is not a PDEformer checkpoint"),
        ("missing-data", "--data", "does not exist"),
        ("h5-wrong-layout", "--data", "lacks 'num_mod': not a dataset from `foundry pde generate`"),
        ("npz-as-data", "--data", "is not an HDF5 file"),
    ],
)
def test_eval_rejects_wrong_files(case, option, says, ckpt, tiny_h5, tmp_path):
    import h5py

    npz, corrupt, wrong = tmp_path / "u.npz", tmp_path / "corrupt.pt", tmp_path / "wrong.h5"
    np.savez(npz, u=np.zeros(3))
    corrupt.write_bytes(ckpt.read_bytes()[:1000])  # a truncated download
    with h5py.File(wrong, "w") as f:
        f["u"] = np.zeros((2, 3, 4))
    data, checkpoint = {
        "npz-as-checkpoint": (tiny_h5, npz),
        "missing-checkpoint": (tiny_h5, tmp_path / "none.pt"),
        "corrupt-checkpoint": (tiny_h5, corrupt),
        "missing-data": (tmp_path / "none.h5", ckpt),
        "h5-wrong-layout": (wrong, ckpt),
        "npz-as-data": (npz, ckpt),
    }[case]
    res = runner.invoke(app, ["pde", "eval", "--data", str(data), "--checkpoint", str(checkpoint)])
    bad = checkpoint if option == "--checkpoint" else data
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert f"Invalid value for {option}: " in flat(res.output) and says in flat(res.output)
    assert str(bad) in flat(res.output)


def test_train_rejects_a_wrong_data_file(tmp_path):
    (tmp_path / "train.h5").write_bytes(b"not hdf5")
    args = ["--train-data", str(tmp_path / "train.h5"), "--out-dir", str(tmp_path)]
    res = runner.invoke(app, ["pde", "train", *args])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"{tmp_path / 'train.h5'} is not an HDF5 file" in flat(res.output)


@pytest.mark.parametrize("device", ["bogus", "cuda"])
def test_unavailable_device_names_the_option(device, ckpt, tiny_h5, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    res = runner.invoke(
        app, ["pde", "eval", "--data", str(tiny_h5), "--checkpoint", str(ckpt), "--device", device]
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "Invalid value for --device" in flat(res.output)
    res = runner.invoke(
        app, ["pde", "train", "--train-data", str(tiny_h5), "--out-dir", str(tmp_path), "--device", device]
    )
    assert res.exit_code == 2 and "Invalid value for --device" in flat(res.output)
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize(
    ("equation", "ic", "says"),
    [
        ("u_tt - u_xx = 0", "sin(pi*x)", "u_tt: second time derivatives"),
        ("u_t + u_xx = 0", "sin(pi*x)", "negative diffusivity (kappa = -1 < 0)"),
        ("u_t + 5*u_x - 0.1*u_xx = 0", "sin(pi*x)", "coefficient 5 of u in the flux"),
        ("u_t + u_x - 2*u_xx = 0", "sin(pi*x)", "spans [2, 2], outside the training range [0.001, 1]"),
        ("u_t + u_x = 0", "x", "not periodic on [-1, 1]: u0(-1) ~ -1, u0(1) ~ 1"),
        (
            "u_t + sin(u) - 0.1*u_xx = 0",
            "sin(pi*x)",
            "the term sin(u) is not a term of the pretraining family",
        ),
    ],
)
def test_predict_warns_outside_the_family(equation, ic, says, ckpt, tmp_path):
    res = runner.invoke(
        app, ["pde", "predict", equation, "--ic", ic, "--out", str(tmp_path / "w.npz"), "--no-plot"]
    )
    assert res.exit_code == 0 and "warning: " in res.output and says in res.output  # warned, still predicted
    assert (tmp_path / "w.npz").exists()


def test_in_family_equations_get_no_warning(ckpt, tmp_path):
    for eq in (
        "u_t + (0.5*u^2)_x - 0.01*u_xx = 0",
        "u_t + u_x = 0",
        "u_t - ((0.1+0.05*cos(pi*x))*u_x)_x = 0",
    ):
        res = runner.invoke(
            app, ["pde", "predict", eq, "--ic", "sin(pi*x)", "--out", str(tmp_path / "n.npz")]
        )
        assert res.exit_code == 0 and "warning" not in res.output, eq
