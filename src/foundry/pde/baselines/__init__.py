"""Specialist baselines trained per equation (FNO, DeepONet, U-Net), PDEformer-1's comparison models."""

from foundry.pde.baselines.train import BaselineResult, train_baseline

__all__ = ["BaselineResult", "train_baseline"]
