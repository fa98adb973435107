"""The PDEformer-1 training loss and evaluation metric (official ``src/core/losses.py``, ``metric.py``)."""

from __future__ import annotations

import torch

NRMSE_EPS = 0.05  # the reference's ``normalize_eps``


def nrmse_per_sample(pred: torch.Tensor, label: torch.Tensor, eps: float = NRMSE_EPS) -> torch.Tensor:
    """RMSE(pred, label) / (RMS(label) + eps) over the last axis: [..., Q] -> [...]."""
    rmse = torch.sqrt(torch.mean((pred - label) ** 2, dim=-1))
    rms = torch.sqrt(torch.mean(label**2, dim=-1))
    return rmse / (rms + eps)


def normalized_rmse(pred: torch.Tensor, label: torch.Tensor, eps: float = NRMSE_EPS) -> torch.Tensor:
    """Batch mean of `nrmse_per_sample`; pred, label: [B, Q].

    The ``eps`` keeps near-zero solutions from dominating the loss.
    """
    return torch.mean(nrmse_per_sample(pred, label, eps))


def relative_l2(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-sample ||pred - label||_2 / (||label||_2 + 1e-6), clipped to [0, 5]; pred, label: [B, Q] -> [B]."""
    err = torch.linalg.vector_norm(pred - label, dim=-1) / (torch.linalg.vector_norm(label, dim=-1) + 1e-6)
    return err.clamp(0.0, 5.0)
