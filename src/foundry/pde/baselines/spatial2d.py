"""Specialist baselines for 2-D problems: u0(x, y) -> u(t, x, y) on the whole [T, G, G] grid at once.

- `FNO3D`: neuraloperator's ``FNO`` over (t, x, y), the reference's FNO3D (PDEformer-2 §8: modes 12,
  width 20, 4 layers); inputs u0 tiled along t plus the t, x, y coordinates (4 channels). The modes
  per axis are capped by the grid (12 of 21 frames, 12 of 32 points). Not autoregressive.
- `UNetFrames`: the 2-D `unet.UNet2d` over (x, y), inputs u0, x, y (3 channels), all T frames out
  as channels.

Both optionally take P scalar PDE parameters per sample (``num_params``; e.g. the coefficients of
the family) as P more constant input channels, the reference baselines' ``input_pde_param``.

`train_grid_baseline` trains either on a few samples with the PDEformer loss (`normalized_rmse`
over each sample's whole grid), Adam and a cosine decay over a fixed number of steps, and reports
the mean per-sample `relative_l2` on the full grid of a test set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from foundry.pde.baselines.unet import UNet2d
from foundry.pde.losses.nrmse import normalized_rmse, relative_l2
from foundry.pde.training.schedule import warmup_cosine

Tensor = torch.Tensor


def _param_channels(params: Tensor | None, shape: tuple[int, ...]) -> list[Tensor]:
    """[B, P] -> P constant channels of ``shape`` = (B, 1, *spatial); none when params is None."""
    if params is None:
        return []
    view = (params.shape[0], params.shape[1]) + (1,) * (len(shape) - 2)
    return [params.to(torch.float32).view(view).expand(shape[0], -1, *shape[2:])]


def grid_inputs3d(u0: Tensor, t: Tensor, x: Tensor, y: Tensor, params: Tensor | None = None) -> Tensor:
    """[B, X, Y] initial fields, coordinates [T], [X], [Y] (and params [B, P]) -> [B, 4 + P, T, X, Y]."""
    b, nx, ny = u0.shape
    shape = (b, 1, t.shape[0], nx, ny)
    return torch.cat(
        [
            u0[:, None, None].expand(shape),
            t.view(1, 1, -1, 1, 1).expand(shape),
            x.view(1, 1, 1, -1, 1).expand(shape),
            y.view(1, 1, 1, 1, -1).expand(shape),
            *_param_channels(params, shape),
        ],
        dim=1,
    )


def _fno(axes: tuple[int, ...], in_channels: int, out_channels: int, modes: int, width: int, num_layers: int):
    """neuraloperator's FNO over ``axes`` (their lengths cap the modes kept); coordinates come as channels."""
    from neuralop.models import FNO

    return FNO(
        n_modes=tuple(min(modes, n) for n in axes),
        in_channels=in_channels,
        out_channels=out_channels,
        hidden_channels=width,
        n_layers=num_layers,
        positional_embedding=None,  # the coordinates are explicit input channels
    )


class FNO3D(nn.Module):
    """u0 [B, X, Y] -> u [B, T, X, Y] with a 3-D FNO over (t, x, y).

    Parameters
    ----------
    grid : (T, X, Y) of the data; caps the modes kept per axis at the axis length
    modes, width, num_layers : the reference's 12, 20, 4
    num_params : scalar PDE parameters per sample fed as constant channels (0: the IC only)
    """

    def __init__(
        self,
        grid: tuple[int, int, int],
        modes: int = 12,
        width: int = 20,
        num_layers: int = 4,
        num_params: int = 0,
    ) -> None:
        super().__init__()
        self.fno = _fno(grid, 4 + num_params, 1, modes, width, num_layers)

    def forward(self, u0: Tensor, t: Tensor, x: Tensor, y: Tensor, params: Tensor | None = None) -> Tensor:
        return self.fno(grid_inputs3d(u0, t, x, y, params))[:, 0]


def _frame_inputs(u0: Tensor, x: Tensor, y: Tensor, params: Tensor | None) -> Tensor:
    """[B, X, Y] -> [B, 3 + P, X, Y]: u0, x, y (and the PDE parameters) as channels."""
    b, nx, ny = u0.shape
    xx = x.view(1, 1, -1, 1).expand(b, 1, nx, ny)
    yy = y.view(1, 1, 1, -1).expand(b, 1, nx, ny)
    return torch.cat([u0[:, None], xx, yy, *_param_channels(params, (b, 1, nx, ny))], dim=1)


def _check_frames(out: Tensor, t: Tensor, name: str) -> Tensor:
    if out.shape[1] != t.shape[0]:
        raise ValueError(f"{name} predicts {out.shape[1]} frames, asked for {t.shape[0]}")
    return out


class UNetFrames(nn.Module):
    """u0 [B, X, Y] -> u [B, T, X, Y]: a 2-D U-Net over (x, y) with the T frames as output channels."""

    def __init__(self, num_t: int, width: int = 16, num_params: int = 0) -> None:
        super().__init__()
        self.unet = UNet2d(width, in_channels=3 + num_params, out_channels=num_t)

    def forward(self, u0: Tensor, t: Tensor, x: Tensor, y: Tensor, params: Tensor | None = None) -> Tensor:
        return _check_frames(self.unet.net(_frame_inputs(u0, x, y, params)), t, "UNetFrames")


class FNO2DFrames(nn.Module):
    """u0 [B, X, Y] -> u [B, T, X, Y]: a 2-D FNO over (x, y) with the T frames as output channels.

    The reference's FNO2D baseline on 2-D data (modes 12, width 20, 4 layers; modes capped by the grid):
    like `UNetFrames`, one pass maps the initial field to every frame, not an autoregressive rollout.
    """

    def __init__(
        self,
        grid: tuple[int, int, int],
        modes: int = 12,
        width: int = 20,
        num_layers: int = 4,
        num_params: int = 0,
    ) -> None:
        super().__init__()
        self.fno = _fno(grid[1:], 3 + num_params, grid[0], modes, width, num_layers)

    def forward(self, u0: Tensor, t: Tensor, x: Tensor, y: Tensor, params: Tensor | None = None) -> Tensor:
        return _check_frames(self.fno(_frame_inputs(u0, x, y, params)), t, "FNO2DFrames")


def build_grid_model(kind: str, grid: tuple[int, int, int], num_params: int = 0) -> nn.Module:
    """``"fno3d"``, ``"fno2d"`` or ``"unet"`` for data on the (T, X, Y) grid, default sizes."""
    if kind == "fno3d":
        return FNO3D(grid, num_params=num_params)
    if kind == "fno2d":
        return FNO2DFrames(grid, num_params=num_params)
    if kind == "unet":
        return UNetFrames(grid[0], num_params=num_params)
    raise ValueError(f"kind must be 'fno3d', 'fno2d' or 'unet', got {kind!r}")


@torch.no_grad()
def evaluate_grid(
    model: nn.Module,
    u: Tensor,
    t: Tensor,
    x: Tensor,
    y: Tensor,
    params: Tensor | None = None,
    batch_size: int = 16,
) -> Tensor:
    """Per-sample relative L2 on the full grid, u [N, T, X, Y] -> [N] (the model sees u[:, 0], params)."""
    model.eval()
    errs = []
    for s in range(0, len(u), batch_size):
        p = params[s : s + batch_size] if params is not None else None
        pred = model(u[s : s + batch_size, 0], t, x, y, p)
        errs.append(relative_l2(pred.flatten(1), u[s : s + batch_size].flatten(1)))
    return torch.cat(errs)


@dataclass
class GridResult:
    """test_rel_l2: mean over the test set (final model); curve: (step, that mean) at each evaluation."""

    test_rel_l2: float
    per_sample: list[float]
    curve: list[tuple[int, float]] = field(default_factory=list)
    first_loss: float = float("nan")
    last_loss: float = float("nan")
    train_seconds: float = 0.0
    num_params: int = 0


def train_grid_baseline(
    model: nn.Module,
    u_train: Tensor,
    u_test: Tensor,
    t: Tensor,
    x: Tensor,
    y: Tensor,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    eval_every: int | None = None,
    p_train: Tensor | None = None,
    p_test: Tensor | None = None,
) -> GridResult:
    """Train ``model`` (u0 -> all frames) on u_train [n, T, X, Y] for ``steps`` Adam steps.

    ``p_train`` [n, P], ``p_test`` [N, P]: the samples' PDE parameters, for a model with num_params = P.

    Each step takes min(batch_size, n) distinct samples (epochs of a seeded permutation); the loss
    is `normalized_rmse` over each sample's whole grid; lr follows a cosine from ``lr`` to 0.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(u_train)
    bsz = min(batch_size, n)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    curve: list[tuple[int, float]] = []
    losses: list[float] = []
    order: list[int] = []
    seconds = 0.0
    for step in range(steps):
        model.train()
        start = time.perf_counter()
        if len(order) < bsz:
            order += list(rng.permutation(n))
        idx, order = order[:bsz], order[bsz:]
        label = u_train[idx]
        for group in opt.param_groups:
            group["lr"] = lr * warmup_cosine(step, 0, steps)
        p = p_train[idx] if p_train is not None else None
        loss = normalized_rmse(model(label[:, 0], t, x, y, p).flatten(1), label.flatten(1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        seconds += time.perf_counter() - start
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            curve.append((step + 1, float(evaluate_grid(model, u_test, t, x, y, p_test).mean())))
    per = evaluate_grid(model, u_test, t, x, y, p_test)
    curve.append((steps, float(per.mean())))
    return GridResult(
        float(per.mean()),
        per.tolist(),
        curve,
        losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"),
        seconds,
        sum(p.numel() for p in model.parameters() if p.requires_grad),
    )
