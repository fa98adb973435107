"""The graph builder against hand-built graphs (PDEformer-1 §2.1, docs/PDE_DAG.md of the reference)."""

from collections import Counter

import numpy as np
import pytest

from foundry.pde.graph.dag import NODE_TYPES, GraphSizes, build_graph, shortest_paths
from foundry.pde.graph.symbolic import PDE


def edges_by_type(g):
    """Directed edges (type(src), type(dst)) recovered from spatial_pos == 2 (path length 1)."""
    src, dst = np.nonzero(g.spatial_pos == 2)
    return Counter(
        (NODE_TYPES[g.node_type[a]], NODE_TYPES[g.node_type[b]]) for a, b in zip(src, dst, strict=True)
    )


def burgers(kappa=0.01):
    pde = PDE()
    u = pde.unknown()
    pde.ic(u, lambda x: np.sin(np.pi * x))
    pde.eq(pde.dt(u) + pde.dx(0.5 * u**2 - kappa * pde.dx(u)))
    return pde


def test_burgers_graph_by_hand():
    g = build_graph(burgers(), num_mod=3)
    names = [NODE_TYPES[t] for t in g.node_type]
    # Mod nodes first, then uf and its ic, then the equation in depth-first order
    assert names[:17] == [
        "Mod0",
        "Mod1",
        "Mod2",
        "uf",
        "ic",
        "add",
        "dt",
        "dx",
        "add",
        "mul",
        "coef",
        "square",
        "mul",
        "coef",
        "dx",
        "eq0",
        "pad",
    ]
    assert names[52:56] == ["Branch0", "Branch1", "Branch2", "Branch3"] and set(names[56:]) == {"pad"}
    expected = Counter(
        {
            ("Mod0", "uf"): 1,
            ("Mod1", "uf"): 1,
            ("Mod2", "uf"): 1,
            ("uf", "ic"): 1,
            ("uf", "dt"): 1,
            ("uf", "square"): 1,
            ("uf", "dx"): 1,
            ("dt", "add"): 1,
            ("dx", "add"): 1,
            ("add", "dx"): 1,
            ("mul", "add"): 2,
            ("coef", "mul"): 2,
            ("square", "mul"): 1,
            ("dx", "mul"): 1,
            ("add", "eq0"): 1,
            ("ic", "Branch0"): 1,
            ("ic", "Branch1"): 1,
            ("ic", "Branch2"): 1,
            ("ic", "Branch3"): 1,
        }
    )
    assert edges_by_type(g) == expected
    np.testing.assert_allclose(g.node_scalar[[10, 13]], [0.5, -0.01])  # the -kappa*u_x folds the sign
    # degrees are 1 + degree; uf has 3 Mod parents and feeds ic, dt, square, dx
    assert g.in_degree[3] == 4 and g.out_degree[3] == 5
    assert g.in_degree[0] == 1 and g.out_degree[0] == 2 and g.in_degree[60] == 0
    # shortest Mod0 -> eq0 is Mod0 -> uf -> dt -> add -> eq0 (4 edges): spatial_pos 5; coef 0.5 -> eq0
    # is coef -> mul -> add -> dx -> add -> eq0 (5 edges)
    assert g.spatial_pos[0, 15] == 5 and g.spatial_pos[15, 0] == 15 and g.spatial_pos[10, 15] == 6
    assert g.spatial_pos[0, 0] == 1 and g.spatial_pos[0, 60] == 0
    # the two coefficients are neither ancestor nor descendant of each other, nor are two Mods
    assert not g.attn_mask[10, 13] and not g.attn_mask[0, 1]
    assert g.attn_mask[10, 15] and g.attn_mask[15, 10] and g.attn_mask[0, 52]
    assert not g.attn_mask[0, 60] and g.attn_mask[60, 60]  # padding: only itself
    assert g.function_values.shape == (3, 128, 2)
    np.testing.assert_allclose(
        g.function_values[0, :, 1], np.sin(np.pi * g.function_values[0, :, 0]), atol=1e-6
    )
    assert not g.function_values[1:].any()


def test_robin_boundary_graph():
    pde = PDE()
    u = pde.unknown()
    pde.ic(u, np.zeros(128))
    pde.eq(pde.dt(u) - 0.1 * pde.dx(pde.dx(u)))
    pde.bc(u, "left", "robin", value=2.0, alpha=0.6, beta=0.8)
    pde.bc(u, "right", "dirichlet", value=-1.0)
    g = build_graph(pde, num_mod=2)
    names = [NODE_TYPES[t] for t in g.node_type if t]
    assert Counter(names)["bv_l"] == 1 and Counter(names)["bv_r"] == 1
    e = edges_by_type(g)
    # robin: 0.6*u + 0.8*u_x -> add -> bv_l ; dirichlet: u -> bv_r
    assert e[("add", "bv_l")] == 1 and e[("uf", "bv_r")] == 1 and e[("mul", "add")] == 3
    bv_l, bv_r = names.index("bv_l"), names.index("bv_r")
    assert g.node_scalar[bv_l] == 2.0 and g.node_scalar[bv_r] == -1.0
    robin_add = [i for i in range(len(names)) if names[i] == "add" and g.spatial_pos[i, bv_l] == 2]
    assert len(robin_add) == 1 and g.in_degree[robin_add[0]] == 3
    coefs = sorted(float(g.node_scalar[i]) for i in range(len(names)) if names[i] == "coef")
    np.testing.assert_allclose(coefs, [-0.1, 0.6, 0.8])


def test_multi_term_flux_and_fields():
    pde = PDE()
    u = pde.unknown()
    pde.ic(u, np.cos)
    s = pde.field(lambda x: 0.3 * np.sin(np.pi * x))
    k = pde.field(lambda x: 0.1 + 0.05 * x**2)
    pde.eq(pde.dt(u) + s + pde.dx(1.5 * u - 2.0 * u**2 + 0.5 * u**3 - k * pde.dx(u)))
    g = build_graph(pde, num_mod=3)
    names = [NODE_TYPES[t] for t in g.node_type]
    flux_add = [
        i
        for i, n in enumerate(names)
        if n == "add"
        and g.spatial_pos[i, :].tolist().count(2) == 1
        and names[np.flatnonzero(g.spatial_pos[i] == 2)[0]] == "dx"
    ]
    assert len(flux_add) == 1 and g.in_degree[flux_add[0]] == 1 + 4  # four flux terms
    e = edges_by_type(g)
    assert e[("Branch0", "cf")] == 2 and e[("ic", "Branch0")] == 1  # branches feed fields, ic feeds branches
    assert e[("cf", "add")] == 1 and e[("cf", "mul")] == 1 and e[("neg", "add")] == 1
    assert e[("uf", "square")] == 2  # u**2 and u**3 = mul(u, square(u)) each square u
    np.testing.assert_allclose(
        g.function_values[2, :, 1], 0.1 + 0.05 * g.function_values[2, :, 0] ** 2, rtol=1e-6
    )


def test_shortest_paths_closed_form():
    adj = np.zeros((4, 4), bool)
    adj[0, 1] = adj[1, 2] = adj[0, 2] = adj[2, 3] = True
    d = shortest_paths(adj)
    assert d[0, 3] == 2 and d[1, 3] == 2 and np.isinf(d[3, 0]) and d[2, 2] == 0


def test_long_paths_clip_and_sizes_checked():
    pde = PDE()
    u = pde.unknown()
    pde.ic(u, np.zeros(128))
    e = u
    for _ in range(20):
        e = pde.sin(e)
    pde.eq(pde.dt(u) + e)
    g = build_graph(pde, num_mod=1)
    assert g.spatial_pos.max() == 15  # paths of 14+ edges and unreachable pairs share the last bucket
    with pytest.raises(ValueError, match="max_n_scalar_nodes=20"):
        build_graph(pde, num_mod=1, sizes=GraphSizes(max_n_scalar_nodes=20))


def test_missing_pieces_are_named():
    pde = PDE()
    u = pde.unknown()
    pde.eq(pde.dt(u))
    with pytest.raises(ValueError, match="no initial condition"):
        build_graph(pde, 3)
    pde.ic(u, np.zeros(128))
    pde.bc(u, "left", "neumann")
    with pytest.raises(ValueError, match="both ends"):
        build_graph(pde, 3)
    with pytest.raises(ValueError, match="only powers"):
        _ = u**4
