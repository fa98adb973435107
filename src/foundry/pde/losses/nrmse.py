"""The PDEformer-1 training loss and evaluation metric (official ``src/core/losses.py``, ``metric.py``)."""

from __future__ import annotations

import torch


def normalized_rmse(pred: torch.Tensor, label: torch.Tensor, eps: float = 0.05) -> torch.Tensor:
    """Batch mean of RMSE(pred, label) / (RMS(label) + eps) over the last axis.

    pred, label: [B, Q]. The ``eps`` keeps near-zero solutions from dominating the loss.
    """
    rmse = torch.sqrt(torch.mean((pred - label) ** 2, dim=-1))
    rms = torch.sqrt(torch.mean(label**2, dim=-1))
    return torch.mean(rmse / (rms + eps))


def relative_l2(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-sample ||pred - label||_2 / (||label||_2 + 1e-6), clipped to [0, 5]; pred, label: [B, Q] -> [B]."""
    err = torch.linalg.vector_norm(pred - label, dim=-1) / (torch.linalg.vector_norm(label, dim=-1) + 1e-6)
    return err.clamp(0.0, 5.0)
