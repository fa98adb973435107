"""PDEformer as a batched, differentiable forward map for inverse problems (1-D and 2-D graphs).

An inverse problem asks the same PDE (same graph shape) many questions: one set of unknown
coefficients against many initial conditions, many candidate coefficients (a PSO swarm, or
several gradient-descent starts). So everything that does not depend on the unknowns is
computed once:

- the graph's structure (types, degrees, attention bias) is shared by all candidates;
- padding nodes are dropped before the graph Transformer (they are masked out of every real
  node's attention, so the real nodes' outputs are unchanged; a test checks it against
  `PDEformer.encode`);
- the function encoder's tokens of the initial conditions are computed once per IC (the weighted
  DeepSet encodes each function on its own, so a row's tokens depend only on that row).

Unknown scalar coefficients enter through the graph's ``node_scalar`` and hence the scalar
encoder; the slot of each unknown is found by building the graph at probe values and seeing
which ``node_scalar`` entries move (the graph builder may fold a sign or a factor into a number,
e.g. ``-kappa*u_xx`` stores ``-kappa``), so ``node_scalar = base + theta @ slots``.
An unknown coefficient *field* enters as the values of one function row (``function_values``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from foundry.pde.graph.dag import GRAPH_KEYS, PDEGraph, build_graph
from foundry.pde.graph.symbolic import PDE
from foundry.pde.losses.nrmse import nrmse_per_sample
from foundry.pde.models.pdeformer import PDEformer

STRUCTURE_KEYS = ("node_type", "in_degree", "out_degree", "spatial_pos", "attn_mask")
PROBE_STEP = 0.25


def probe_values(num: int) -> np.ndarray:
    """Generic, distinct, non-zero, non-unit values at which a template PDE is built."""
    return 0.3 + 0.17 * np.arange(num)


def _same_structure(a: PDEGraph, b: PDEGraph) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in STRUCTURE_KEYS)


def scalar_slots(
    build: Callable[[np.ndarray], PDE], names: list[str], num_mod: int, sizes
) -> tuple[PDEGraph, np.ndarray, np.ndarray]:
    """Locate the unknown scalar coefficients in the graph of ``build(theta)``.

    Returns the graph at the probe values, ``base`` (n_scalar,) and ``slots`` (K, n_scalar) with
    ``node_scalar(theta) = base + theta @ slots`` (checked at a second step for linearity).
    Errors name the coefficient that is missing, enters a field, or changes the graph's shape.
    """
    probe = probe_values(len(names))
    g0 = build_graph(build(probe), num_mod, sizes)
    slots = np.zeros((len(names), g0.node_scalar.size))
    for k, name in enumerate(names):
        graphs = []
        for step in (PROBE_STEP, 2 * PROBE_STEP):
            theta = probe.copy()
            theta[k] += step
            graphs.append(build_graph(build(theta), num_mod, sizes))
        for g in graphs:
            if not _same_structure(g, g0):
                raise ValueError(f"coefficient {name!r}: changing its value changes the PDE's graph")
            if not np.array_equal(g.function_values, g0.function_values):
                raise ValueError(
                    f"coefficient {name!r} enters a coefficient field (a function of x); only scalar "
                    "coefficients can be recovered this way"
                )
        d1 = (graphs[0].node_scalar.astype(np.float64) - g0.node_scalar) / PROBE_STEP
        d2 = (graphs[1].node_scalar.astype(np.float64) - g0.node_scalar) / (2 * PROBE_STEP)
        if np.abs(d1).max() < 1e-6:
            raise ValueError(f"coefficient {name!r} does not appear in the PDE")
        if np.abs(d1 - d2).max() > 1e-3 * (1 + np.abs(d1).max()):
            raise ValueError(f"coefficient {name!r} enters a graph number non-linearly (e.g. a*a or a*b)")
        slots[k] = np.round(d1, 4)
    base = g0.node_scalar.astype(np.float64) - probe @ slots
    base[(np.abs(base) < 1e-6) & (np.abs(slots).sum(0) > 0)] = 0.0  # float32 round-off of the probe
    return g0, base, slots


class Surrogate:
    """u(t, x[, y]) at observation points as a differentiable function of the unknowns.

    Works for 1-D graphs (weighted-DeepSet function encoder, (t, x) queries) and 2-D graphs
    (CNN function encoder, (t, x, y) queries): a function row's values are its last column.

    Parameters
    ----------
    model : PDEformer
        A trained model (put in eval mode; its weights are not trained here).
    graph : PDEGraph
        The PDE's graph at any value of the unknowns (only its structure and functions are used).
    ics : (n_ic, n_pts) or (n_ic, R, n_pts) array
        Initial conditions on the points of ``graph.function_values``: one row (row 0, the IC of
        the first unknown) or the first R rows (the ICs of the first R unknowns, in unknown order,
        e.g. u0 and v0 of the 2-D wave system). Rows after R keep the graph's values.
    coords : (n_ic, Q, num_coords) array
        Observation points (t, x) or (t, x, y) of each IC (the model's ``num_coords`` columns).
    """

    def __init__(self, model: PDEformer, graph: PDEGraph, ics: np.ndarray, coords: np.ndarray) -> None:
        self.model = model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        ics = np.asarray(ics, dtype=np.float32)
        n_pts, n_fn = graph.function_values.shape[1], graph.function_values.shape[0]
        if ics.ndim == 2:
            ics = ics[:, None]
        if ics.ndim != 3 or ics.shape[2] != n_pts or not 1 <= ics.shape[1] <= n_fn:
            raise ValueError(
                f"ics must be (n_ic, {n_pts}) or (n_ic, R, {n_pts}) to match the PDE's function points, "
                f"got {ics.shape}"
            )
        n_coords = model.config.num_coords
        coords = np.asarray(coords)
        if coords.ndim != 3 or coords.shape[0] != ics.shape[0] or coords.shape[2] != n_coords:
            raise ValueError(f"coords must be (n_ic={ics.shape[0]}, Q, {n_coords}), got {coords.shape}")
        self.num_ic = ics.shape[0]
        self.num_ic_rows = ics.shape[1]
        self.device = next(model.parameters()).device
        tens = {k: torch.as_tensor(np.asarray(getattr(graph, k)), device=self.device) for k in GRAPH_KEYS}
        keep = torch.nonzero(tens["node_type"] > 0).flatten()  # drop padding nodes
        self.num_scalar = graph.node_scalar.size
        self.scalar_keep = keep[keep < self.num_scalar]
        self.function_keep = keep[keep >= self.num_scalar] - self.num_scalar
        ge = model.graph_encoder
        with torch.no_grad():
            long = {k: tens[k].long()[None] for k in ("node_type", "in_degree", "out_degree", "spatial_pos")}
            structure = ge.structure_embedding(long["node_type"], long["in_degree"], long["out_degree"])
            self.structure = structure[:, keep]  # [1, m, d]
            bias = ge.attention_bias(long["spatial_pos"], tens["attn_mask"].bool()[None])
            self.bias = bias[:, :, keep][:, :, :, keep].contiguous()  # [1, H, m, m]
            fv = tens["function_values"].float()
            self.function_values = fv  # [F, P, d + 1], values in the last column
            self.fixed_tokens = model.function_encoder(fv[None])[0]  # [F * nb, d], fields at base values
            rows = fv[None, : self.num_ic_rows].repeat(self.num_ic, 1, 1, 1)
            rows[..., -1] = torch.as_tensor(ics, device=self.device)
            self.ic_tokens = model.function_encoder(rows)  # [n_ic, R * nb, d]
            self.scalar_base = tens["node_scalar"].float()
        self.coords = torch.as_tensor(coords, dtype=torch.float32, device=self.device)

    def tokens(
        self, node_scalar: torch.Tensor, field_rows: dict[int, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Input features [S * n_ic, m, d] for S candidates (node_scalar [S, n_scalar])."""
        s = node_scalar.shape[0]
        nb = self.model.config.num_branches
        scal = self.model.scalar_encoder(
            self.model.scalar_features(node_scalar[:, self.scalar_keep])
        )  # [S, ns, d]
        fun = self.fixed_tokens[None, None].expand(s, self.num_ic, -1, -1)  # [S, n_ic, F*nb, d]
        r = self.num_ic_rows
        parts = [self.ic_tokens[None].expand(s, -1, -1, -1), fun[:, :, r * nb :]]
        if field_rows:
            fun = list(parts[1].split(nb, dim=2))
            for row, values in field_rows.items():  # values [S, P]
                if not r <= row < self.function_values.shape[0]:
                    raise ValueError(f"field row {row} must be a function row after the {r} IC row(s)")
                pts = self.function_values[row][None].expand(s, -1, -1)
                pts = torch.cat([pts[..., :-1], values[..., None]], -1)
                fun[row - r] = self.model.function_encoder(pts[:, None])[:, None].expand(
                    -1, self.num_ic, -1, -1
                )
            parts[1] = torch.cat(fun, dim=2)
        fun = torch.cat(parts, dim=2)[:, :, self.function_keep]
        scal = scal[:, None].expand(-1, self.num_ic, -1, -1)
        return torch.cat([scal, fun], dim=2).reshape(s * self.num_ic, -1, scal.shape[-1])

    def predict(
        self, node_scalar: torch.Tensor, field_rows: dict[int, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Predictions [S, n_ic, Q] at the observation points for S candidates.

        ``field_rows`` maps a function row (after the IC rows) to its candidate values [S, n_pts].
        """
        s = node_scalar.shape[0]
        h = self.tokens(node_scalar, field_rows) + self.structure
        mods = self.model.graph_encoder.mix(h, self.bias)[:, : self.model.config.num_mod]
        coords = self.coords[None].expand(s, -1, -1, -1).reshape(s * self.num_ic, -1, self.coords.shape[-1])
        return self.model.decode(mods, coords).reshape(s, self.num_ic, -1)

    def misfit(
        self,
        node_scalar: torch.Tensor,
        u_obs: torch.Tensor,
        field_rows: dict[int, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Normalised RMSE to the observations, mean over ICs -> [S].

        Per candidate this is `foundry.pde.losses.nrmse.normalized_rmse` over its ICs (the
        training loss, as the reference's inverse scripts use); u_obs is [n_ic, Q].
        """
        pred = self.predict(node_scalar, field_rows)
        return nrmse_per_sample(pred, u_obs.reshape(1, self.num_ic, -1)).mean(dim=-1)
