"""Full-grid evaluation with the relative-L2 metric."""

from __future__ import annotations

import numpy as np
import torch

from foundry.pde.data.dataset import PDEDataset
from foundry.pde.losses.nrmse import relative_l2
from foundry.pde.models.pdeformer import PDEformer


@torch.no_grad()
def evaluate(
    model: PDEformer,
    data: PDEDataset,
    limit: int | None = None,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Per-sample relative L2 error on the full grid of the first `limit` samples (inside their domains)."""
    model.eval()
    n = len(data) if limit is None else min(limit, len(data))
    errs = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(n, start + batch_size))
        graph, coords, labels = data.full_grid(idx, device)
        pred = model(graph, coords)
        mask = data.full_grid_mask(idx)
        if mask is not None:  # points outside a domain are neither predicted nor scored
            keep = torch.as_tensor(mask, device=pred.device)
            pred, labels = pred * keep, labels * keep
        errs.append(relative_l2(pred, labels).cpu().numpy())
    return np.concatenate(errs)
