"""Mesh-free prediction with a trained PDEformer: symbolic/text PDE -> u on any (t, x) points."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from foundry.pde.checkpoint import CheckpointError, read_checkpoint
from foundry.pde.data.dataset import graph_to_tensors, trim_padding
from foundry.pde.graph.dag import GRAPH_KEYS, build_graph
from foundry.pde.graph.symbolic import PDE
from foundry.pde.models.pdeformer import PDEformer, PDEformerConfig

DEFAULT_CHECKPOINT = "pdeformer_xs.pt"
DEFAULT_CHECKPOINT_2D = "pdeformer2_xs.pt"


def default_checkpoint() -> Path:
    """The pretrained XS checkpoint shipped inside the package."""
    return Path(str(resources.files("foundry.pde") / "checkpoints" / DEFAULT_CHECKPOINT))


def default_checkpoint2d() -> Path:
    """The pretrained 2-D (PDEformer-2 XS) checkpoint shipped inside the package."""
    return Path(str(resources.files("foundry.pde") / "checkpoints" / DEFAULT_CHECKPOINT_2D))


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[PDEformer, dict]:
    """Load a checkpoint written by training (``best.pt``/``last.pt``) or the shipped one.

    Returns the model in eval mode and the checkpoint's metadata (everything but the weights).
    The file is read with torch's weights-only loader (`read_checkpoint`): it cannot run code.
    Raises FileNotFoundError for a missing file and `CheckpointError` (a ValueError with a one-line
    message naming the file) for anything that is not a PDEformer checkpoint.
    """
    path = Path(path) if path is not None else default_checkpoint()
    ckpt = read_checkpoint(path, device)
    try:
        model = PDEformer(PDEformerConfig(**ckpt["model_config"])).to(device)
        model.load_state_dict(ckpt["model"])
    except (TypeError, ValueError, RuntimeError) as e:  # a config or weights that fit no PDEformer
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a loadable PDEformer checkpoint ({reason[:160]})") from None
    model.eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler")}
    return model, meta


@torch.no_grad()
def predict_grid(
    model: PDEformer, pde: PDE, axes: list[np.ndarray], target: int = 0, batch_points: int = 1 << 16
) -> np.ndarray:
    """The target unknown on the grid ``t x x [x y]`` given by ``axes`` -> array [len(t), len(x)(, len(y))].

    The PDE's graph is encoded once; the INR is then evaluated on the query points in batches.
    """
    axes = [np.asarray(a, dtype=np.float32) for a in axes]
    if any(a.ndim != 1 for a in axes):
        raise ValueError("t, x (and y) must be 1-D arrays")
    if len(axes) != model.config.num_coords:
        raise ValueError(
            f"the model reads {model.config.num_coords} coordinates (t and {model.config.num_coords - 1} "
            f"space axes) but {len(axes)} axes were given: a {pde.dim}-D PDE needs a {pde.dim}-D checkpoint"
        )
    device = next(model.parameters()).device
    g = build_graph(pde, model.config.num_mod, model.graph_sizes, target=target)
    arrays = trim_padding({k: getattr(g, k)[None] for k in GRAPH_KEYS}, model.config.num_branches)
    mods = model.encode(graph_to_tensors(arrays, device))
    mesh = np.meshgrid(*axes, indexing="ij")
    coords = torch.as_tensor(np.stack(mesh, -1).reshape(1, -1, len(axes)), device=device)
    parts = [
        model.decode(mods, coords[:, i : i + batch_points]) for i in range(0, coords.shape[1], batch_points)
    ]
    return torch.cat(parts, dim=1).reshape(mesh[0].shape).cpu().numpy()


def predict(
    model: PDEformer, pde: PDE, t: np.ndarray, x: np.ndarray, batch_points: int = 1 << 16
) -> np.ndarray:
    """u(t, x) of a 1-D PDE on the grid ``t`` x ``x`` -> array [len(t), len(x)]."""
    return predict_grid(model, pde, [t, x], batch_points=batch_points)
