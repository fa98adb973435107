"""scripts/gpu/pde_pretrain.sh in its tiny CPU mode: data, training from the shipped weights, one folder."""

import os
import subprocess
import sys
from pathlib import Path

from foundry.pde.checkpoint import read_checkpoint
from foundry.pde.training.train import read_log

SCRIPT = Path(__file__).parents[2] / "scripts" / "gpu" / "pde_pretrain.sh"


def test_pretrain_script_tiny_cpu_mode(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "TINY": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "o"), "1"], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    out = tmp_path / "o"
    ckpt = read_checkpoint(out / "checkpoint.pt")
    assert ckpt["model_config"]["log_scalars"] and ckpt["step"] == 4  # shipped weights extended, trained
    assert ckpt["model"]["scalar_encoder.0.weight"][:, 1:].abs().max() > 0  # zero-init log columns learned
    log = read_log(out / "run" / "log.jsonl")
    assert any(r.get("test_rel_l2") is not None for r in log)
    assert "done:" in (out / "pde_pretrain.log").read_text()
