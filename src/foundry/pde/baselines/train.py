"""Train one specialist baseline (FNO, DeepONet or U-Net) on one benchmark file: `train_baseline`.

The same loss as PDEformer (`normalized_rmse`, here over the whole (t, x) grid of each sample), Adam
and a cosine learning-rate decay (no warm-up, as the reference's finetuning and baseline configs);
the test metric is the mean per-sample `relative_l2` on the full grid of the test file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from foundry.pde.losses.nrmse import normalized_rmse, relative_l2
from foundry.pde.training.schedule import warmup_cosine

KINDS = ("fno", "deeponet", "unet")
DEFAULT_LR = {"fno": 1e-3, "deeponet": 3e-4, "unet": 1e-3}
DEFAULT_EPOCHS = 100


@dataclass
class BaselineResult:
    """Outcome of `train_baseline`.

    Attributes
    ----------
    test_rel_l2 : mean per-sample relative L2 on the full grid of the test file (final model)
    curve : (epoch, test relative L2) at every evaluation
    train_loss : (epoch, mean training loss over that epoch's batches) for every epoch
    train_seconds : wall time of the training loop, evaluations excluded
    num_params : trainable parameters
    epochs : epochs completed (fewer than asked if ``max_minutes`` ran out)
    """

    test_rel_l2: float
    curve: list[tuple[int, float]] = field(default_factory=list)
    train_loss: list[tuple[int, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    num_params: int = 0
    epochs: int = 0


def build_model(kind: str, num_x: int = 128) -> nn.Module:
    """The baseline ``kind`` with its default size (see each module)."""
    if kind == "fno":
        from foundry.pde.baselines.fno import FNOBaseline

        return FNOBaseline()
    if kind == "deeponet":
        from foundry.pde.baselines.deeponet import DeepONet

        return DeepONet(num_sensors=num_x)
    if kind == "unet":
        from foundry.pde.baselines.unet import UNet2d

        return UNet2d()
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def load_solutions(path: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u [N, T, X], t [T], x [X] (float32) from a project-format HDF5 file."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    with h5py.File(path, "r") as f:
        u = f["u"][: limit if limit is not None else f["u"].shape[0]].astype(np.float32)
        return u, f["t"][:].astype(np.float32), f["x"][:].astype(np.float32)


@torch.no_grad()
def evaluate_baseline(
    model: nn.Module, u: torch.Tensor, t: torch.Tensor, x: torch.Tensor, batch_size: int = 32
) -> np.ndarray:
    """Per-sample relative L2 on the full grid: u [N, T, X] -> [N]."""
    model.eval()
    errs = []
    for s in range(0, len(u), batch_size):
        label = u[s : s + batch_size]
        pred = model(label[:, 0], t, x)
        errs.append(relative_l2(pred.flatten(1), label.flatten(1)).cpu().numpy())
    return np.concatenate(errs)


def train_baseline(
    kind: Literal["fno", "deeponet", "unet"],
    train_file: Path,
    test_file: Path,
    num_train: int,
    *,
    epochs: int | None = None,
    max_minutes: float | None = None,
    batch_size: int = 16,
    lr: float | None = None,
    seed: int = 0,
    eval_every: int = 10,
    device: str = "cpu",
) -> BaselineResult:
    """Train a specialist on the first ``num_train`` samples of ``train_file``; test on all of ``test_file``.

    Parameters
    ----------
    kind : "fno", "deeponet" or "unet"
    num_train : training samples used (the first ones of the file)
    epochs : passes over the training samples (default 100); the cosine decays over them
    max_minutes : stop after this training wall time; the cosine then follows the time used
    lr : peak Adam learning rate (default per kind: `DEFAULT_LR`)
    eval_every : epochs between test evaluations recorded in ``curve`` (the last epoch always is)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if num_train < 1:
        raise ValueError(f"num_train must be positive, got {num_train}")
    for name, v in (("epochs", epochs), ("max_minutes", max_minutes), ("lr", lr)):
        if v is not None and v <= 0:
            raise ValueError(f"{name} must be positive, got {v}")
    if batch_size < 1 or eval_every < 1:
        raise ValueError(f"batch_size and eval_every must be positive, got {batch_size}, {eval_every}")
    u_train, t, x = load_solutions(train_file, num_train)
    if len(u_train) < num_train:
        raise ValueError(f"num_train={num_train} but {train_file} holds only {len(u_train)} samples")
    u_test, t_test, x_test = load_solutions(test_file)
    if u_test.shape[1:] != u_train.shape[1:]:
        raise ValueError(f"test grid {u_test.shape[1:]} differs from the training grid {u_train.shape[1:]}")
    epochs = epochs if epochs is not None else DEFAULT_EPOCHS
    lr = lr if lr is not None else DEFAULT_LR[kind]

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = torch.device(device)
    model = build_model(kind, u_train.shape[-1]).to(dev)
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    u_tr, tt, xx = (torch.as_tensor(a, device=dev) for a in (u_train, t, x))
    u_te = torch.as_tensor(u_test, device=dev)
    steps_per_epoch = int(np.ceil(num_train / batch_size))
    total_steps, step = epochs * steps_per_epoch, 0
    budget = 60 * max_minutes if max_minutes is not None else None
    curve: list[tuple[int, float]] = []
    train_loss: list[tuple[int, float]] = []
    train_seconds, epoch = 0.0, 0
    while epoch < epochs:
        # ---- one epoch ----
        model.train()
        start = time.perf_counter()
        order = rng.permutation(num_train)
        epoch_loss = 0.0
        for b in range(steps_per_epoch):
            idx = torch.as_tensor(order[b * batch_size : (b + 1) * batch_size], device=dev)
            label = u_tr[idx]
            frac = (train_seconds + time.perf_counter() - start) / budget if budget else 0.0
            for group in opt.param_groups:
                group["lr"] = lr * warmup_cosine(step, 0, total_steps, 0.0, frac)
            loss = normalized_rmse(model(label[:, 0], tt, xx).flatten(1), label.flatten(1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            epoch_loss += loss.item()
        train_seconds += time.perf_counter() - start
        epoch += 1
        train_loss.append((epoch, epoch_loss / steps_per_epoch))
        out_of_time = budget is not None and train_seconds >= budget
        # ---- evaluation ----
        if epoch % eval_every == 0 or epoch == epochs or out_of_time:
            curve.append((epoch, float(evaluate_baseline(model, u_te, tt, xx).mean())))
        if out_of_time:
            break
    return BaselineResult(curve[-1][1], curve, train_loss, train_seconds, num_params, epoch)
