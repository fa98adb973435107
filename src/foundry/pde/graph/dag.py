"""PDE -> directed computational graph with PDEformer-1's structural features.

Implements the graph construction of PDEformer-1 (arXiv 2407.06664 §2.1; the official
``pde_dag.py``): one node per symbol and operator, edges from operand to operator, ``eq0`` sinks,
``bv_l``/``bv_r`` boundary nodes, ``Branch`` nodes carrying the function encoder's output and
``Mod`` nodes whose final embeddings modulate the INR. The graph Transformer sees only topology, so
the node order is fixed by slot: modulation nodes first, then the other scalar-slot nodes (zero
padded to ``max_n_scalar_nodes``), then ``max_n_function_nodes * num_branches`` branch nodes.

The same construction builds PDEformer-2's graphs (arXiv 2507.15409, reference §8; the official
``pde_dag.py``) for 2-D domains: a domain other than the whole box is an ``sdf`` function node that
precedes every ``uf``; a boundary condition is an ``eq0`` node whose predecessors are the
condition's sum and the boundary piece's ``sdf`` node; derivatives ``dy`` (``dz``) come from the
vocabulary generated per axis. A function row holds (coordinates..., value), so 1-D rows are
(x, f) as before and 2-D rows (x, y, f).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from foundry.pde.graph.domain import AXES
from foundry.pde.graph.symbolic import PDE, Expr

# PDEformer-1's types keep their ids (the shipped 1-D checkpoint's embedding rows); the 2-D ones
# take reserved slots: the derivatives of the axes after x, then the domain/boundary types. ``bv``
# and ``dn`` are in the vocabulary as in the reference, which no longer builds them (``bv`` is
# deprecated there for eq0 + sdf, and a normal derivative is spelled out as sum_k d_k u * d_k sdf).
_NEW_TYPES = tuple(f"d{a}" for a in AXES[1:]) + ("sdf", "bv", "dn")
NODE_TYPES: tuple[str, ...] = (
    ("pad", "uf", "coef", "bv_l", "bv_r", "ic", "cf", "add", "mul", "eq0", "dt", "dx", "neg")
    + ("square", "exp", "sin", "cos", "vc")
    + _NEW_TYPES
    + tuple(f"Reserved{i}" for i in range(15 - len(_NEW_TYPES)))
    + tuple(f"Branch{i}" for i in range(32))
    + tuple(f"Mod{i}" for i in range(16))
)
NODE_TYPE_ID = {name: i for i, name in enumerate(NODE_TYPES)}
NUM_NODE_TYPES = 128  # embedding vocabulary, as in the reference configs


@dataclass(frozen=True)
class GraphSizes:
    """Padding sizes of the graph arrays (the reference uses 52 scalar slots, 3 functions, 4 branches)."""

    max_n_scalar_nodes: int = 52
    max_n_function_nodes: int = 3
    num_branches: int = 4
    num_spatial: int = 16
    num_degree: int = 32

    @classmethod
    def for_dim(cls, dim: int, **kw: int) -> GraphSizes:
        """The padding for PDEs in ``dim`` spatial dimensions: PDEformer-1's in 1-D; in 2-D and 3-D
        room for domains, boundary conditions and several unknowns (96 scalar slots, 8 functions;
        the reference uses 80-192 and 6-16)."""
        return cls(**kw) if dim <= 1 else cls(max_n_scalar_nodes=96, max_n_function_nodes=8, **kw)

    @property
    def num_nodes(self) -> int:
        return self.max_n_scalar_nodes + self.max_n_function_nodes * self.num_branches


@dataclass
class PDEGraph:
    """The arrays the model reads for one PDE (n = `GraphSizes.num_nodes`).

    Attributes
    ----------
    node_type : (n,) int64, index into `NODE_TYPES` (0 = padding)
    node_scalar : (max_n_scalar_nodes,) float32, value of ``coef``/``bv`` nodes, else 0
    function_values : (max_n_function_nodes, n_pts, d + 1) float32, (x, [y,] f) per function node
    in_degree, out_degree : (n,) int64, 1 + degree (clipped), 0 for padding
    spatial_pos : (n, n) int64, 1 + shortest directed path length i -> j clipped to
        num_spatial - 2, num_spatial - 1 when unreachable, 0 for padding
    attn_mask : (n, n) bool, False where j is neither ancestor nor descendant of i, or padding
    """

    node_type: np.ndarray
    node_scalar: np.ndarray
    function_values: np.ndarray
    in_degree: np.ndarray
    out_degree: np.ndarray
    spatial_pos: np.ndarray
    attn_mask: np.ndarray


# The array names of a `PDEGraph`, in field order: HDF5 datasets, batches and the model use these keys.
GRAPH_KEYS: tuple[str, ...] = tuple(f.name for f in fields(PDEGraph))


@dataclass
class _RawGraph:
    types: list[str]
    scalars: list[float]
    edges: list[tuple[int, int]]
    functions: list[tuple[int, np.ndarray, np.ndarray]]  # (owner node, points [n, d], values [n])


def _collect(pde: PDE, num_mod: int, target: int = 0) -> _RawGraph:
    """Walk the expression trees; returns nodes in scalar-slot order and the edges."""
    pde.check()
    g = _RawGraph([], [], [], [])

    def new(kind: str, scalar: float = 0.0) -> int:
        g.types.append(kind)
        g.scalars.append(scalar)
        return len(g.types) - 1

    # Modulation nodes of every unknown occupy the first n_vars * num_mod slots, the target's first
    # (the model reads the first num_mod nodes: the reference's ModNodeSwapper, done at build time)
    if not 0 <= target < len(pde.unknowns):
        raise ValueError(f"target {target} is not an unknown index (the PDE has {len(pde.unknowns)})")
    order = [target] + [i for i in range(len(pde.unknowns)) if i != target]
    slots = {i: [new(f"Mod{j}") for j in range(num_mod)] for i in order}
    mods = [slots[i] for i in range(len(pde.unknowns))]
    memo: dict[int, int] = {}

    def visit(e: Expr) -> int:
        if id(e) in memo:
            return memo[id(e)]
        if e.kind == "uf":
            raise ValueError(f"unknown {e.value!r} does not belong to this PDE")
        node = new(e.kind, e.value if e.kind == "coef" else 0.0)
        memo[id(e)] = node
        if e.kind == "cf":
            g.functions.append((node, e.value.points, e.value.values))
        elif e.kind == "sdf":
            g.functions.append((node, e.value.function.points, e.value.function.values))
        for a in e.args:
            g.edges.append((visit(a), node))
        return node

    domain = visit(pde.sdf("domain")) if pde.domain.sdf is not None else None
    num_ics = 0  # initial conditions lead the function list, in unknown order
    for i, u in enumerate(pde.unknowns):
        node = new("uf")
        memo[id(u)] = node
        if domain is not None:
            g.edges.append((domain, node))
        for m in mods[i]:
            g.edges.append((m, node))
        if i not in pde.initial:  # a steady or constraint unknown: no ``ic`` node
            continue
        ic = new("ic")
        g.edges.append((node, ic))
        f = pde.initial[i]
        g.functions.insert(num_ics, (ic, f.points, f.values))
        num_ics += 1
    for lhs in pde.equations:
        g.edges.append((visit(lhs), new("eq0")))
    for bc in pde.boundary:
        if pde.dim == 1:
            g.edges.append((visit(bc.expr), new("bv_l" if bc.side == "left" else "bv_r", bc.value)))
            continue
        lhs, sdf = visit(bc.expr), visit(pde.sdf(bc.side))
        eq0 = new("eq0")
        g.edges += [(lhs, eq0), (sdf, eq0)]
    return g


def shortest_paths(adj: np.ndarray) -> np.ndarray:
    """All-pairs shortest directed path lengths (Floyd-Warshall); ``inf`` where unreachable."""
    n = adj.shape[0]
    d = np.where(adj, 1.0, np.inf)
    np.fill_diagonal(d, 0.0)
    for k in range(n):
        d = np.minimum(d, d[:, k, None] + d[None, k, :])
    return d


def build_graph(pde: PDE, num_mod: int, sizes: GraphSizes | None = None, target: int = 0) -> PDEGraph:
    """Turn a `PDE` into padded `PDEGraph` arrays.

    Parameters
    ----------
    pde : PDE
        The problem; must pass `PDE.check`.
    num_mod : int
        Modulation nodes per unknown = number of INR hidden layers of the model that will read it.
    sizes : GraphSizes, optional
        Padding sizes; `ValueError` if the PDE does not fit.
    target : int
        The unknown the model will predict from this graph (its ``Mod`` nodes come first).
    """
    sizes = sizes or GraphSizes()
    if not 1 <= num_mod <= 16:
        raise ValueError(f"num_mod must be in [1, 16], got {num_mod}")
    raw = _collect(pde, num_mod, target)
    n_scalar, n_fn = len(raw.types), len(raw.functions)
    if n_scalar > sizes.max_n_scalar_nodes:
        raise ValueError(
            f"the PDE needs {n_scalar} graph nodes, more than max_n_scalar_nodes={sizes.max_n_scalar_nodes}"
        )
    if n_fn > sizes.max_n_function_nodes:
        raise ValueError(
            f"the PDE has {n_fn} functions (initial conditions and fields), more than "
            f"max_n_function_nodes={sizes.max_n_function_nodes}"
        )
    n_pts = {p.shape for _, p, _ in raw.functions}
    if len(n_pts) != 1:
        raise ValueError("all functions of one PDE must be sampled on the same number of points")
    n_pts, dim = n_pts.pop()
    n, nb = sizes.num_nodes, sizes.num_branches

    node_type = np.zeros(n, dtype=np.int64)
    node_type[:n_scalar] = [NODE_TYPE_ID[t] for t in raw.types]
    node_scalar = np.zeros(sizes.max_n_scalar_nodes, dtype=np.float32)
    node_scalar[:n_scalar] = raw.scalars
    adj = np.zeros((n, n), dtype=bool)
    for a, b in raw.edges:
        adj[a, b] = True
    function_values = np.zeros((sizes.max_n_function_nodes, n_pts, dim + 1), dtype=np.float32)
    for f, (owner, points, values) in enumerate(raw.functions):
        function_values[f, :, :dim], function_values[f, :, dim] = points, values
        for j in range(nb):
            branch = sizes.max_n_scalar_nodes + f * nb + j
            node_type[branch] = NODE_TYPE_ID[f"Branch{j}"]
            # an initial condition feeds its branches; branches feed a coefficient field or an sdf
            if raw.types[owner] == "ic":
                adj[owner, branch] = True
            else:
                adj[branch, owner] = True

    valid = node_type > 0
    dist = shortest_paths(adj)
    spatial_pos = 1 + np.clip(dist, 0, sizes.num_spatial - 2)
    spatial_pos = np.where(np.isinf(dist), sizes.num_spatial - 1, spatial_pos).astype(np.int64)
    pair_valid = valid[:, None] & valid[None, :]
    spatial_pos[~pair_valid] = 0
    reach = np.isfinite(dist)
    attn_mask = (reach | reach.T) & pair_valid
    attn_mask[np.arange(n), np.arange(n)] = True  # padded rows attend to themselves only (no NaN)
    in_degree = np.where(valid, 1 + np.minimum(adj.sum(0), sizes.num_degree - 2), 0).astype(np.int64)
    out_degree = np.where(valid, 1 + np.minimum(adj.sum(1), sizes.num_degree - 2), 0).astype(np.int64)
    return PDEGraph(node_type, node_scalar, function_values, in_degree, out_degree, spatial_pos, attn_mask)
