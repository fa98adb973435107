"""CNN encoder of functions sampled on a uniform 2-D grid (PDEformer-2's ``cnn2dv3``)."""

from __future__ import annotations

import torch
from torch import nn


class CNNFunctionEncoder(nn.Module):
    """Three strided convolutions turn a G x G field into a 2 x 2 map = 4 tokens per function.

    ``Conv(k4, s4) 1 -> 32, ReLU, Conv(k4, s4) 32 -> 128, ReLU, Conv(k = s = G/32) 128 -> d_model``:
    G -> G/4 -> G/16 -> 2. For G = 128 (PDEformer-2) the last kernel is 4, as in the official
    ``cnn2dv3``; G = 64 and 32 give kernels 2 and 1 for small runs. Kernel = stride everywhere, so
    the receptive fields do not overlap: token (r, c) reads exactly the quadrant (r, c) of the grid,
    and the encoder is neither translation-invariant nor -equivariant (where a feature sits matters).

    Input conventions (choices, compared with the official code):

    - Point ``i * G + j`` of a function is the grid point (x_i, y_j): row-major with x along the
      first (height) axis, as the official encoder's reshape to [G, G, columns] reads it.
    - Only the last column (the value) is read (the official ``conv2d_input_txyz: False``). The
      coordinate columns, where the official data writes -1 for coordinates a function does not
      depend on, are ignored: the position of a point is given by its index alone, so the -1
      markers and any coordinate values have no effect.
    - No padding: the grid must have exactly G x G points (a function on a smaller grid or a
      non-square domain has to be resampled, or filled, by the data pipeline). A function slot
      the graph does not use (all zeros) is encoded like any field; its tokens are padding nodes,
      masked out of every real node's attention by the graph encoder.
    - Token order: token ``2 r + c`` is the output pixel (r, c), each token one d_model-channel
      vector. The official config (``cnn_keep_nchw: True``) instead reshapes the [d, 2, 2] NCHW
      output directly to [4, d], so its token k holds channels k d/4 ... (k+1) d/4 - 1 at all four
      pixels. Both are fixed rearrangements of the same 4 d numbers; a port of official weights
      must apply that permutation to the encoder output.
    - Initialisation: PyTorch's default (Kaiming-uniform, a = sqrt(5)), not the official HeUniform.

    Parameters
    ----------
    d_model : int
        Width of each token (the last convolution's channels).
    grid : int
        G, the points per axis; a multiple of 32.
    """

    num_branches = 4

    def __init__(self, d_model: int, grid: int = 128) -> None:
        super().__init__()
        if grid < 32 or grid % 32:
            raise ValueError(f"function_grid must be a positive multiple of 32, got {grid}")
        self.d_model, self.grid = d_model, grid
        last = grid // 32
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=4, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 128, kernel_size=4, stride=4),
            nn.ReLU(),
            nn.Conv2d(128, d_model, kernel_size=last, stride=last),
        )

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points: [B, F, G * G, columns] (values in the last column) -> tokens [B, F * 4, d_model]."""
        b, f, p, _ = points.shape
        g = self.grid
        if p != g * g:
            raise ValueError(
                f"the CNN function encoder needs {g} x {g} = {g * g} points per function, got {p}"
            )
        x = points[..., -1].reshape(b * f, 1, g, g)
        x = self.net(x)  # [B * F, d, 2, 2]
        return x.permute(0, 2, 3, 1).reshape(b, f * 4, self.d_model)
