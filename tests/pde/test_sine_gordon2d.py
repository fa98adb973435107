"""Sine-Gordon 2-D (the unseen few-shot family): solver accuracy, file layout, 2-D grid baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from foundry.pde.baselines.spatial2d import (
    FNO3D,
    FNO2DFrames,
    UNetFrames,
    build_grid_model,
    train_grid_baseline,
)
from foundry.pde.data.dataset import PDEDataset
from foundry.pde.data.families2d import random_field
from foundry.pde.data.generate2d import GRAPH_SIZES
from foundry.pde.data.sine_gordon2d import (
    FAMILY,
    equations_text,
    generate_sine_gordon,
    sine_gordon_pde,
    solve_sine_gordon,
)
from foundry.pde.data.spectral2d import grid
from foundry.pde.graph.dag import GRAPH_KEYS, build_graph
from foundry.pde.graph.parser import parse_pde2d
from foundry.pde.losses.nrmse import normalized_rmse

torch.set_num_threads(1)


def test_small_amplitude_is_the_klein_gordon_mode():
    """u0 = eps cos(2 pi (p x + q y)): u ~ eps cos(w t) u0-shape, w^2 = c2 |K|^2 + k (sin u ~ u)."""
    n, eps = 16, 1e-4
    x, y = grid(n)
    pq = torch.tensor([[1, 0], [2, 1], [0, 3]], dtype=torch.float64)
    c2, k = torch.tensor([0.1, 0.5, 1.0]), torch.tensor([2.0, 0.5, 1.3])
    shape = torch.cos(2 * math.pi * (pq[:, 0, None, None] * x + pq[:, 1, None, None] * y))
    u, ok = solve_sine_gordon(eps * shape, c2, k, num_t=11, dt=1e-3)
    assert ok.all()
    w = (c2.double() * (2 * math.pi) ** 2 * (pq**2).sum(1) + k.double()).sqrt()
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    exact = eps * torch.cos(w[:, None, None, None] * t[None, :, None, None]) * shape[:, None]
    err = (u - exact).abs().max() / eps
    assert err < 2e-4, err


def test_second_order_in_dt_and_nonlinear():
    gen = torch.Generator().manual_seed(3)
    u0 = 1.5 * random_field(gen, 3, 32)
    c2, k = torch.tensor([0.2, 0.6, 1.0]), torch.tensor([2.0, 1.0, 0.5])
    ref, _ = solve_sine_gordon(u0, c2, k, num_t=3, dt=0.5 / 64)
    errs = [(solve_sine_gordon(u0, c2, k, num_t=3, dt=0.5 / m)[0] - ref).abs().max().item() for m in (4, 8)]
    assert 3.0 < errs[0] / errs[1] < 5.0, errs  # second order (4x)
    lin, _ = solve_sine_gordon(1e-3 * u0, c2, k, num_t=3, dt=0.5 / 8)
    assert (ref - lin * 1e3).abs().max() > 0.05  # the amplitude-1.5 runs are far from linear


def test_member_graph_equals_the_text_form():
    g = 32
    x, y = np.meshgrid(np.arange(g) / g, np.arange(g) / g, indexing="ij")
    u0 = 0.5 * np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y)
    ours = build_graph(sine_gordon_pde(u0, 0.3, 1.2, g), 3, GRAPH_SIZES)
    text = parse_pde2d(equations_text(0.3, 1.2), ["0.5*sin(2*pi*x)*cos(2*pi*y)", "0"], unknowns="u,v")
    theirs = build_graph(text, 3, GRAPH_SIZES)
    for key in GRAPH_KEYS:
        np.testing.assert_allclose(getattr(ours, key), getattr(theirs, key), atol=1e-6, err_msg=key)


def test_file_loads_in_pdedataset(tmp_path):
    path = tmp_path / "sg.h5"
    generate_sine_gordon(path, 3, seed=1, chunk_size=4, dt=0.05 / 8)
    d = PDEDataset(path, num_mod=3)
    assert d.dim == 2 and d.u.shape == (3, 21, 32, 32) and len(d) == 3
    assert d.attrs["family"] == FAMILY
    graph, coords, labels = d.full_grid(np.arange(2), "cpu")
    assert labels.shape == (2, 21 * 32 * 32) and torch.isfinite(labels).all()
    # the stored first frame is the graph's initial condition of u
    fv = d.graph["function_values"][0]
    ic = fv[np.abs(fv[..., 2]).sum(1) > 0][0, :, 2].reshape(32, 32)
    np.testing.assert_allclose(ic, d.u[0, 0], atol=1e-6)


@pytest.mark.parametrize("kind", ["fno3d", "fno2d", "unet"])
def test_grid_baselines_shape_and_one_sample_fit(kind):
    gen = torch.Generator().manual_seed(0)
    t, x = torch.linspace(0, 1, 5), torch.arange(16) / 16
    u0 = random_field(gen, 2, 16).float()
    u = torch.stack([u0 * math.cos(2 * s) for s in t.tolist()], 1)  # [2, 5, 16, 16]
    model = build_grid_model(kind, (5, 16, 16))
    assert isinstance(model, {"fno3d": FNO3D, "fno2d": FNO2DFrames, "unet": UNetFrames}[kind])
    assert model(u0, t, x, x).shape == (2, 5, 16, 16)
    before = normalized_rmse(model(u[:1, 0], t, x, x).flatten(1), u[:1].flatten(1)).item()
    res = train_grid_baseline(model, u[:1], u[1:], t, x, x, steps=15, lr=3e-3)
    after = normalized_rmse(model(u[:1, 0], t, x, x).flatten(1), u[:1].flatten(1)).item()
    assert after < before and res.last_loss < res.first_loss
    assert len(res.per_sample) == 1 and res.curve[-1][0] == 15
    with_params = build_grid_model(kind, (5, 16, 16), num_params=2)  # coefficients as channels
    params = torch.tensor([[0.5, 1.0], [0.2, 2.0]])
    assert with_params(u0, t, x, x, params).shape == (2, 5, 16, 16)
    res = train_grid_baseline(
        with_params, u[:1], u[1:], t, x, x, steps=2, p_train=params[:1], p_test=params[1:]
    )
    assert np.isfinite(res.test_rel_l2)
