"""Recover a coefficient field s(x) of a PDE from scattered observations, through PDEformer.

PDEformer-1 §3.4 (official ``inverse_function.py``): the values of the unknown field on the
function encoder's points are trainable; Adam minimises the normalised-RMSE misfit to the
observations of all ICs plus a regulariser (reference: lr 0.1, 1,000 epochs, squared-L2 weight
1e-5). The field enters the model only through its row of ``function_values``, so the gradient
flows through the weighted-DeepSet function encoder; the model's weights stay fixed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from foundry.pde.graph.dag import build_graph
from foundry.pde.graph.symbolic import PDE
from foundry.pde.inverse.problems import Observations
from foundry.pde.inverse.surrogate import Surrogate
from foundry.pde.models.pdeformer import PDEformer

REGULARISERS = ("l2", "smooth")


@dataclass
class FieldResult:
    """Recovered field values on the function points, final misfit, wall time and misfit history."""

    values: np.ndarray
    misfit: float
    seconds: float
    history: list[float] = field(default_factory=list)
    rel_l2: float | None = None  # vs the true field, when given


def field_row(build: Callable[[np.ndarray], PDE], points: np.ndarray, num_mod: int, sizes) -> tuple:
    """Build the PDE with a probe field; return (graph, row of function_values holding the field).

    ``points`` (n_pts,) only sets the probe's shape (any distinct values); in 2-D the field is the
    flattened G x G grid and the row's last column holds its values.
    """
    probe = 0.3 + 0.2 * np.sin(np.pi * points) + 0.1 * np.cos(3 * np.pi * points)
    g = build_graph(build(probe), num_mod, sizes)
    rows = [
        r
        for r in range(1, g.function_values.shape[0])
        if np.allclose(g.function_values[r, :, -1], probe, atol=1e-6)
    ]
    if len(rows) != 1:
        raise ValueError("the unknown field must appear exactly once in the PDE as a coefficient field s(x)")
    return g, rows[0]


def regulariser(values: torch.Tensor, kind: str, grid_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Squared L2 norm (sum of squares) or squared periodic first differences (smoothness).

    values [..., n_pts]; ``grid_shape`` (e.g. (G, G) in 2-D, row-major) makes "smooth" sum the
    differences along every grid axis (default: one axis, the 1-D field).
    """
    if kind == "l2":
        return (values**2).sum(-1)
    if kind == "smooth":
        shape = tuple(grid_shape) if grid_shape is not None else (values.shape[-1],)
        if int(np.prod(shape)) != values.shape[-1]:
            raise ValueError(f"grid_shape {shape} does not hold {values.shape[-1]} values")
        v = values.reshape(*values.shape[:-1], *shape)
        axes = range(-len(shape), 0)
        return sum(((v - torch.roll(v, 1, dims=a)) ** 2).flatten(-len(shape)).sum(-1) for a in axes)
    raise ValueError(f"regulariser must be one of {REGULARISERS}, got {kind!r}")


def recover_field(
    model: PDEformer,
    build: Callable[[np.ndarray], PDE],
    obs: Observations,
    num_steps: int = 300,
    lr: float = 0.05,
    reg_weight: float = 1e-5,
    reg_kind: str = "l2",
    init: np.ndarray | None = None,
    truth: np.ndarray | None = None,
) -> FieldResult:
    """Adam on the field's values at the function points; cosine learning-rate decay.

    Parameters
    ----------
    build : callable
        Field values (n_pts,) -> the symbolic PDE with that field (on the ICs' points).
    obs : Observations
        Or any object with ``ic`` ((n_ic, n_pts) or (n_ic, R, n_pts)), ``coords()`` and ``u``
        (e.g. `foundry.pde.inverse.problems2d.ScatteredObservations` for 2-D PDEs).
    init : (n_pts,) array, optional
        Starting field (default zero).
    truth : (n_pts,) array, optional
        The true field: ``FieldResult.rel_l2`` then records its relative L2 error.

    In 2-D (function rows of d + 1 = 3 columns) the field is the G x G grid, flattened row-major,
    and the "smooth" regulariser takes periodic differences along both axes.
    """
    if num_steps < 1 or lr <= 0 or reg_weight < 0:
        raise ValueError("num_steps must be >= 1, lr > 0 and reg_weight >= 0")
    regulariser(torch.zeros(1), reg_kind)  # validates reg_kind before any work
    start = time.perf_counter()
    n_pts = np.shape(obs.ic)[-1]  # only the shape matters here
    x = np.linspace(-1.0, 1.0, n_pts, endpoint=False)
    graph, row = field_row(build, x, model.config.num_mod, model.graph_sizes)
    dim = graph.function_values.shape[-1] - 1
    side = round(n_pts ** (1 / dim))
    grid_shape = (side,) * dim if side**dim == n_pts else None
    regulariser(torch.zeros(1, n_pts), reg_kind, grid_shape)  # grid check before the model runs
    sur = Surrogate(model, graph, obs.ic, obs.coords())
    dev = sur.device
    u_obs = torch.as_tensor(obs.u.reshape(obs.u.shape[0], -1), dtype=torch.float32, device=dev)
    node_scalar = sur.scalar_base[None]
    s0 = np.zeros(n_pts) if init is None else np.asarray(init, dtype=np.float64)
    if s0.shape != (n_pts,):
        raise ValueError(f"init must have shape ({n_pts},), got {s0.shape}")
    s = torch.tensor(s0[None], dtype=torch.float32, device=dev, requires_grad=True)
    opt = torch.optim.Adam([s], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, num_steps)
    history = []
    for _ in range(num_steps):
        opt.zero_grad()
        misfit = sur.misfit(node_scalar, u_obs, {row: s})
        (misfit + reg_weight * regulariser(s, reg_kind, grid_shape)).sum().backward()
        opt.step()
        sched.step()
        history.append(float(misfit.detach()[0]))
    with torch.no_grad():
        final = float(sur.misfit(node_scalar, u_obs, {row: s})[0])
    values = s.detach().cpu().numpy()[0].astype(np.float64)
    res = FieldResult(values, final, time.perf_counter() - start, history)
    if truth is not None:
        truth = np.asarray(truth, dtype=np.float64).reshape(-1)
        res.rel_l2 = float(np.linalg.norm(values - truth) / max(np.linalg.norm(truth), 1e-12))
    return res
