"""scripts/gpu/pde2_pretrain.sh in its tiny CPU mode: 2-D data, a 2-XS model trained, one folder."""

import os
import subprocess
import sys
from pathlib import Path

from foundry.pde.checkpoint import read_checkpoint
from foundry.pde.training.train import read_log

SCRIPT = Path(__file__).parents[2] / "scripts" / "gpu" / "pde2_pretrain.sh"


def test_pretrain2d_script_tiny_cpu_mode(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "TINY": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "o"), "1"], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    out = tmp_path / "o"
    ckpt = read_checkpoint(out / "checkpoint.pt")
    assert ckpt["model_config"]["num_coords"] == 3 and ckpt["model_config"]["function_encoder"] == "cnn"
    log = read_log(out / "run" / "log.jsonl")
    assert log[-1]["step"] == 4 and any(r.get("test_rel_l2") is not None for r in log)
    assert (out / "train" / "wave-periodic.h5").exists() and "done:" in (
        out / "pde2_pretrain.log"
    ).read_text()


def test_the_script_generates_every_2d_family_by_default():
    import re

    from foundry.pde.data.generate2d_config import FAMILIES

    text = SCRIPT.read_text()
    default = re.search(r"FAMILIES=\$\{FAMILIES:-(.*?)\}", text, re.S).group(1)
    assert sorted(default.replace("\\", " ").split()) == sorted(FAMILIES)
