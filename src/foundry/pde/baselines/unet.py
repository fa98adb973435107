"""A small 2D U-Net over (t, x): the tiled initial condition and coordinates in, u(t, x) out.

PDEformer-1's U-Net baseline maps the whole solution from the IC like its FNO (not the
autoregressive PDEBench U-Net). Two down/up levels of two 3x3 convolutions each, group norm and
GELU; the grid is padded to a multiple of 4 and the output cropped back. `UNet2d.net` is the bare
network on any [B, in_channels, H, W] input (the 2-D baselines of `spatial2d` use it over (x, y)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from foundry.pde.baselines.fno import grid_inputs


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.GroupNorm(4, c_out),
        nn.GELU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.GroupNorm(4, c_out),
        nn.GELU(),
    )


class UNet2d(nn.Module):
    """U-Net with channels ``width``, 2 ``width``, 4 ``width`` at the three resolutions.

    ``in_channels``/``out_channels`` only matter for `net`; `forward` (the (t, x) baseline) needs the
    defaults 3 and 1.
    """

    def __init__(self, width: int = 16, in_channels: int = 3, out_channels: int = 1) -> None:
        super().__init__()
        w = width
        self.enc0, self.enc1, self.mid = _block(in_channels, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.up1 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec1 = _block(4 * w, 2 * w)
        self.up0 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec0 = _block(2 * w, w)
        self.out = nn.Conv2d(w, out_channels, 1)

    def net(self, h: torch.Tensor) -> torch.Tensor:
        """[B, in_channels, H, W] -> [B, out_channels, H, W] (any H, W)."""
        nh, nw = h.shape[-2:]
        h = F.pad(h, (0, -nw % 4, 0, -nh % 4), mode="replicate")
        e0 = self.enc0(h)
        e1 = self.enc1(F.avg_pool2d(e0, 2))
        m = self.mid(F.avg_pool2d(e1, 2))
        d1 = self.dec1(torch.cat([self.up1(m), e1], 1))
        d0 = self.dec0(torch.cat([self.up0(d1), e0], 1))
        return self.out(d0)[..., :nh, :nw]

    def forward(self, u0: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """[B, X], [T], [X] -> u [B, T, X]."""
        return self.net(grid_inputs(u0, t, x))[:, 0]
