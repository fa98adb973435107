"""Specialist baselines: shapes, resolution handling, overfitting a tiny set, `train_baseline` end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foundry.pde.baselines import BaselineResult, train_baseline
from foundry.pde.baselines.deeponet import REFERENCE, DeepONet
from foundry.pde.baselines.fno import FNOBaseline
from foundry.pde.baselines.train import build_model
from foundry.pde.baselines.unet import UNet2d
from foundry.pde.data.pdebench import BenchmarkSpec, generate_benchmark, sample_initial_conditions
from foundry.pde.losses.nrmse import normalized_rmse

torch.set_num_threads(1)


def grid(nt: int, nx: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.linspace(0, 1, nt), torch.linspace(-1, 1, nx + 1)[:-1]


def advection_batch(num: int, nt: int, nx: int, seed: int = 0) -> torch.Tensor:
    """Exact advection solutions u(t, x) = g(x - 0.4 t): [num, nt, nx]."""
    ics = sample_initial_conditions(np.random.default_rng(seed), num)
    t, x = grid(nt, nx)
    shifted = x.numpy()[None, :] - 0.4 * t.numpy()[:, None]
    return torch.as_tensor(ics.values(shifted.reshape(-1)).reshape(num, nt, nx), dtype=torch.float32)


@pytest.mark.parametrize("kind", ["fno", "deeponet", "unet"])
@pytest.mark.parametrize("nt", [101, 26])
def test_output_shape(kind, nt):
    model = build_model(kind, 64)
    t, x = grid(nt, 64)
    out = model(torch.randn(3, 64), t, x)
    assert out.shape == (3, nt, 64) and torch.isfinite(out).all()


def test_fno_is_resolution_independent():
    """The same FNO on a grid twice as fine agrees, at the shared points, with its coarse output."""
    torch.manual_seed(0)
    model = FNOBaseline().eval()
    u = advection_batch(2, 65, 128)
    with torch.no_grad():
        coarse = model(u[:, 0, ::2], *grid(33, 64))
        fine = model(u[:, 0], *grid(65, 128))
    err = torch.linalg.vector_norm(fine[:, ::2, ::2] - coarse) / torch.linalg.vector_norm(coarse)
    assert err < 0.05
    # unlike DeepONet, whose branch net needs the IC at its fixed sensors
    with pytest.raises(ValueError, match="sensors"):
        DeepONet(num_sensors=128)(u[:, 0, ::2], *grid(33, 64))


def test_deeponet_reference_size_builds():
    model = DeepONet(num_sensors=128, **REFERENCE)
    n = sum(p.numel() for p in model.parameters())
    # two 6-layer MLPs of width 256 (inputs 128 sensors / (t, x)) ending in 2048 basis functions, + bias
    hidden = 4 * (256 * 256 + 256)
    assert n == (128 * 256 + 256) + (2 * 256 + 256) + 2 * (hidden + 256 * 2048 + 2048) + 1
    assert model(torch.randn(2, 128), *grid(5, 16)).shape == (2, 5, 16)


@pytest.mark.parametrize("kind", ["fno", "deeponet", "unet"])
def test_each_baseline_overfits_a_tiny_set(kind):
    """Four travelling waves a sin(pi (x - 0.4 t) + phi): 60 Adam steps cut the loss at least 5x."""
    t, x = grid(26, 32)
    g = torch.Generator().manual_seed(0)
    amp, phase = torch.rand(4, 1, 1, generator=g) + 0.5, 2 * np.pi * torch.rand(4, 1, 1, generator=g)
    u = amp * torch.sin(np.pi * (x[None, None, :] - 0.4 * t[None, :, None]) + phase)
    torch.manual_seed(0)
    model = build_model(kind, 32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = normalized_rmse(model(u[:, 0], t, x).flatten(1), u.flatten(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, (losses[0], losses[-1])


def test_unet_handles_odd_grids():
    out = UNet2d(width=8)(torch.randn(2, 30), *grid(7, 30))
    assert out.shape == (2, 7, 30)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    spec = BenchmarkSpec("advection", beta=0.1)
    generate_benchmark(spec, d / "train.h5", num_samples=8, seed=1, chunk_size=8)
    generate_benchmark(spec, d / "test.h5", num_samples=4, seed=2, chunk_size=4)
    return d / "train.h5", d / "test.h5"


def test_train_baseline_end_to_end(tiny_files):
    train, test = tiny_files
    res = train_baseline("deeponet", train, test, num_train=8, epochs=4, batch_size=4, eval_every=2)
    assert isinstance(res, BaselineResult)
    assert [e for e, _ in res.curve] == [2, 4] and res.epochs == 4
    # one training loss per epoch (the mean over its batches)
    assert [e for e, _ in res.train_loss] == [1, 2, 3, 4]
    assert all(np.isfinite(v) and v > 0 for _, v in res.train_loss)
    assert 0 < res.test_rel_l2 <= 5 and res.num_params > 0 and res.train_seconds > 0
    # the same seed gives the same result
    again = train_baseline("deeponet", train, test, num_train=8, epochs=4, batch_size=4, eval_every=2)
    assert again.test_rel_l2 == pytest.approx(res.test_rel_l2, rel=1e-5)
    fno = train_baseline("fno", train, test, num_train=4, epochs=1, batch_size=4)
    assert len(fno.curve) == 1 and np.isfinite(fno.test_rel_l2)


def test_train_baseline_rejects_bad_arguments(tiny_files):
    train, test = tiny_files
    with pytest.raises(ValueError, match="kind"):
        train_baseline("transformer", train, test, num_train=4)
    with pytest.raises(ValueError, match="num_train=100"):
        train_baseline("fno", train, test, num_train=100)
    with pytest.raises(ValueError, match="epochs"):
        train_baseline("fno", train, test, num_train=4, epochs=0)
    with pytest.raises(FileNotFoundError):
        train_baseline("fno", train.with_name("missing.h5"), test, num_train=4)


@pytest.mark.slow
def test_zero_shot_benchmark_quick(tmp_path):
    """benchmarks/pde/zero_shot.py --quick runs end to end on tiny data and writes its outputs into
    out/pde/quick, never over the committed results in docs/figures/pde."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "pde" / "zero_shot.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (tmp_path / "docs").exists()
    quick = tmp_path / "out" / "pde" / "quick"
    out = json.loads((quick / "zero_shot_quick.json").read_text())
    for kind in ("zero_shot", "finetune", "fno", "deeponet", "unet"):
        assert set(out["results"][kind]) == {"burgers_nu0.1", "advection_beta0.1"}
    assert all(0 < v <= 5 for v in out["results"]["fno"]["burgers_nu0.1"].values())
    # --quick evaluates twice per run: a learning curve whose last point is the reported (final) number
    for kind in ("finetune", "fno", "deeponet", "unet"):
        for eq, by_n in out["curves"][kind].items():
            for n, curve in by_n.items():
                assert len(curve["step"]) == 2 and curve["step"][0] < curve["step"][1]
                assert curve["test_rel_l2"][-1] == out["results"][kind][eq][n]
                assert all(v is not None and v > 0 for v in curve["train_loss"])
    assert out["setting"]["steps"] == [2, 2] and out["setting"]["num_evals"] == 2
    assert (quick / "zero_shot_quick.png").stat().st_size > 0
    assert (quick / "zero_shot_quick_curves.png").stat().st_size > 0
    assert "paper value" in (quick / "zero_shot_quick.md").read_text()


def test_zero_shot_parse_steps(monkeypatch):
    """--steps: one value broadcast over N, one per N, or a clear error naming the option."""
    import importlib.util
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "pde" / "zero_shot.py"
    spec = importlib.util.spec_from_file_location("zero_shot_bench", script)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # its dataclass looks its module up there
    spec.loader.exec_module(mod)
    assert mod.parse_steps("500", (100, 1000), (30, 30)) == (500, 500)
    assert mod.parse_steps("300,900", (100, 1000), (30, 30)) == (300, 900)
    assert mod.parse_steps(None, (100, 1000, 9000), (30, 30)) == (30, 30, 30)
    for bad in ("300,900,1", "0", "ten"):
        with pytest.raises(ValueError, match="--steps"):
            mod.parse_steps(bad, (100, 1000), (30, 30))
