"""No user file runs code: checkpoints load with torch's weights-only loader, observation files with
numpy's allow_pickle=False; a crafted file is refused with one line and its payload never runs."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from foundry.cli import app
from foundry.pde.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from foundry.pde.inference import default_checkpoint, load_model
from foundry.pde.models.pdeformer import build_model

runner = CliRunner()


class Payload:
    """Unpickling this calls exec, which writes ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


@pytest.fixture
def crafted(tmp_path):
    """A torch.save'd checkpoint (right keys) and a bare pickle, each carrying the payload."""
    marker = tmp_path / "marker"
    torch.manual_seed(0)
    model = build_model("XS")
    as_torch = tmp_path / "evil.pt"
    ckpt = {"model_config": model.config.to_dict(), "model": model.state_dict(), "x": Payload(marker)}
    torch.save(ckpt, as_torch)
    as_pickle = tmp_path / "evil.pkl"
    as_pickle.write_bytes(pickle.dumps({"model_config": {}, "model": Payload(marker)}))
    return marker, as_torch, as_pickle


def test_the_payload_is_real(crafted, tmp_path):
    """Without weights_only the file runs its code: the refusal below is what keeps it out."""
    marker, as_torch, _ = crafted
    torch.load(as_torch, weights_only=False)
    assert marker.read_text() == "code ran"


def test_crafted_checkpoints_are_refused(crafted):
    marker, *files = crafted
    for path in files:
        with pytest.raises(CheckpointError, match="refused by the weights-only loader") as e:
            load_model(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["eval", "predict", "invert", "train-init-from", "train-resume"])
def test_cli_refuses_a_crafted_checkpoint(command, crafted, tmp_path):
    marker, evil, _ = crafted
    data = tmp_path / "d.h5"
    data.write_bytes(b"")  # never read: the checkpoint is refused first
    args = {
        "eval": ["eval", "--data", str(data), "--checkpoint", str(evil)],
        "predict": ["predict", "u_t + u_x = 0", "--ic", "sin(pi*x)", "--checkpoint", str(evil)],
        "invert": ["invert", "--demo", "--num-ics", "1", "--checkpoint", str(evil)],
        "train-init-from": ["train", "--train-data", str(data), "--init-from", str(evil)],
        "train-resume": ["train", "--train-data", str(data), "--out-dir", str(tmp_path / "run")],
    }[command]
    if command == "train-resume":  # a planted last.pt in the run folder
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "last.pt").write_bytes(evil.read_bytes())
    if command == "predict":
        args += ["--out", str(tmp_path / "u.npz")]
    res = runner.invoke(app, ["pde", *args])
    flat = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "refused by the weights-only loader" in flat
    assert not marker.exists()


def test_saved_checkpoints_are_plain_data(tmp_path):
    """What training writes loads with weights_only=True, metadata included."""
    torch.manual_seed(0)
    model = build_model("XS")
    path = tmp_path / "ck.pt"
    save_checkpoint(path, model, {"step": 3, "rel_l2": None, "train_config": {"lr": 1e-3, "out_dir": "run"}})
    ckpt = read_checkpoint(path)
    assert ckpt["step"] == 3 and ckpt["train_config"]["out_dir"] == "run"
    loaded, meta = load_model(path)
    assert meta["model_config"] == model.config.to_dict() and "model" not in meta
    for a, b in zip(loaded.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_shipped_checkpoint_is_plain_data():
    """The XS checkpoint inside the package holds only tensors and plain data."""
    ckpt = torch.load(default_checkpoint(), weights_only=True)
    assert set(ckpt) == {"model_config", "model", "step", "rel_l2", "best_rel_l2"}
    assert all(isinstance(v, int | float) for k, v in ckpt["model_config"].items())


def test_obs_file_with_pickled_objects_is_refused(tmp_path):
    """`invert --obs`: an .npz whose arrays are pickled objects is refused, not unpickled."""
    marker = tmp_path / "marker"
    evil = tmp_path / "obs.npz"
    payload = np.array([Payload(marker)], dtype=object)
    np.savez(evil, t=payload, x=payload, u_obs=payload, ic=payload)  # numpy pickles object arrays
    ckpt = tmp_path / "xs.pt"
    save_checkpoint(ckpt, build_model("XS"), {"step": 0})
    args = ["u_t + a*u_x = 0", "--unknowns", "a", "--obs", str(evil), "--checkpoint", str(ckpt)]
    res = runner.invoke(app, ["pde", "invert", *args])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"--obs: {evil} holds non-numeric arrays" in " ".join(res.output.replace("│", " ").split())
    assert not marker.exists()
