"""PDEformer-2 graphs: domains, boundary conditions and systems have the reference's structure.

The structures checked are those of the official figures ``docs/images/DAG-BC-Dirichlet.png`` and
``DAG-BC-Mur.png`` (functoreality/pdeformer-2) and of its ``pde_dag.py``: the domain's ``sdf`` node
precedes ``uf``; a boundary condition is an ``eq0`` node fed by the condition and by the boundary
piece's ``sdf``; a normal derivative is sum_k c * d_k u * d_k sdf_Omega.
"""

import numpy as np
import pytest

from foundry.pde.graph.dag import NODE_TYPES, GraphSizes, build_graph
from foundry.pde.graph.domain import Domain
from foundry.pde.graph.parser import PDEParseError, parse_domain, parse_pde2d
from foundry.pde.graph.symbolic import PDE

NUM_MOD = 3
SIZES = GraphSizes.for_dim(2)


class View:
    """The graph's real nodes as (type, predecessors) for structural assertions."""

    def __init__(self, pde: PDE, target: int = 0) -> None:
        self.g = build_graph(pde, NUM_MOD, SIZES, target=target)
        real = np.flatnonzero(self.g.node_type > 0)
        self.types = {int(i): NODE_TYPES[self.g.node_type[i]] for i in real}
        sp = self.g.spatial_pos
        self.preds = {i: sorted(int(j) for j in real if j != i and sp[j, i] == 2) for i in self.types}

    def of(self, kind: str) -> list[int]:
        return [i for i, t in self.types.items() if t == kind]

    def pred_types(self, node: int) -> list[str]:
        return sorted(self.types[j] for j in self.preds[node])


def _heat(domain: Domain) -> tuple[PDE, object]:
    pde = PDE(domain=domain, resolution=32)
    u = pde.unknown()
    pde.ic(u, lambda p: np.sin(np.pi * p[:, 0]) * np.sin(np.pi * p[:, 1]))
    pde.eq(pde.dt(u) - 0.01 * pde.laplacian(u))
    return pde, u


def test_dirichlet_on_a_disk_is_eq0_fed_by_u_and_the_boundary_sdf():
    pde, u = _heat(Domain.disk(0.4))
    pde.bc(u, "circle", "dirichlet")
    v = View(pde)
    (uf,) = v.of("uf")
    (sdf,) = v.of("sdf")  # the circle's SDF is the disk's own: one node
    assert v.pred_types(uf) == ["Mod0", "Mod1", "Mod2", "sdf"]
    bc = [e for e in v.of("eq0") if v.preds[e] == sorted([uf, sdf])]
    assert len(bc) == 1 and len(v.of("eq0")) == 2
    # the sdf is a function node: its 4 branch tokens feed it
    assert v.pred_types(sdf) == ["Branch0", "Branch1", "Branch2", "Branch3"]
    fv = v.g.function_values
    inside = fv[1, :, 2] < 0  # function row 1 is the sdf (row 0 the initial condition)
    r = np.hypot(fv[1, :, 0] - 0.5, fv[1, :, 1] - 0.5)
    np.testing.assert_allclose(fv[1, :, 2], r - 0.4, atol=1e-6)
    assert 0.4 < inside.mean() < 0.6  # pi 0.4^2 = 0.50 of the square


def test_square_with_dirichlet_edges_and_a_field_value():
    """The Dirichlet figure: u = 0 on one edge, u + beta(x, y) = 0 on the others."""
    pde, u = _heat(Domain.square(periodic=False))
    beta = pde.field(lambda p: p[:, 0] * p[:, 1])
    pde.bc(u, "top", "dirichlet")
    for edge in ("left", "right", "bottom"):
        pde.bc_eq(u, edge, u + beta)
    v = View(pde)
    (uf,) = v.of("uf")
    sdfs = v.of("sdf")
    assert len(sdfs) == 5  # the domain's and one per edge
    domain_sdf = next(s for s in sdfs if uf in [i for i, p in v.preds.items() if s in p])
    assert v.pred_types(uf)[-1] == "sdf" and domain_sdf in v.preds[uf]
    (cf,) = v.of("cf")  # one field node, shared by the three conditions
    sums = [a for a in v.of("add") if v.preds[a] == sorted([uf, cf])]
    assert len(sums) == 3
    bcs = [e for e in v.of("eq0") if len(v.preds[e]) == 2]
    assert len(bcs) == 4
    for e in bcs:
        kinds = v.pred_types(e)
        assert "sdf" in kinds and (kinds.count("uf") == 1 or kinds.count("add") == 1)


def test_mur_condition_spells_out_the_normal_derivative_with_the_domain_sdf():
    """The Mur figure: (u_t + c(x, y) du/dn) = 0 on the walls of a square periodic in y."""
    pde, u = _heat(Domain.square(periodic=(False, True)))
    c = pde.field(lambda p: 1 + 0.5 * np.cos(2 * np.pi * p[:, 1]))
    for side in ("left", "right"):
        pde.bc_eq(u, side, pde.dt(u) + pde.dn(u, c))
    v = View(pde)
    (uf,) = v.of("uf")
    omega = [s for s in v.of("sdf") if s in v.preds[uf]]
    assert len(omega) == 1
    left = next(e for e in v.of("eq0") if len(v.preds[e]) == 2)
    sum_node = next(p for p in v.preds[left] if v.types[p] == "add")
    assert v.pred_types(sum_node) == ["dt", "mul", "mul"]
    for prod in (p for p in v.preds[sum_node] if v.types[p] == "mul"):
        factors = v.preds[prod]
        assert sorted(v.types[f] for f in factors) in (["cf", "dx", "dx"], ["cf", "dy", "dy"])
        derivative_of = {v.types[v.preds[f][0]] for f in factors if v.types[f] != "cf"}
        assert derivative_of == {"uf", "sdf"}
        assert any(v.preds[f] == omega for f in factors if v.types[f] != "cf")  # d_k sdf_Omega
    (cf,) = v.of("cf")
    assert sum(cf in p for p in v.preds.values()) == 4  # two products on each wall


def test_two_variable_system_and_the_target_unknown():
    """Wave as a first-order system (u_t - v = 0, v_t - c2 Lap u = 0): two uf, two ic, two eq0."""
    pde = parse_pde2d(
        ["u_t - v = 0", "v_t - 0.5*(u_xx + u_yy) = 0"],
        ["sin(2*pi*x)*sin(2*pi*y)", "0"],
        "periodic",
        unknowns="u,v",
    )
    for target in (0, 1):
        v = View(pde, target)
        ufs, ics = v.of("uf"), v.of("ic")
        assert len(ufs) == 2 and len(ics) == 2 and len(v.of("eq0")) == 2 and not v.of("sdf")
        owner = {uf for uf in ufs if 0 in v.preds[uf]}  # slot 0 (the first Mod node) feeds the target
        assert owner == {ufs[target]}
        assert v.g.function_values.shape[1:] == (32 * 32, 3)
        np.testing.assert_allclose(v.g.function_values[1, :, 2], 0.0)  # v(0) = 0 is function row 1


def test_text_and_api_give_the_same_graph():
    text = parse_pde2d("u_t - 0.01*(u_xx + u_yy) = 0", "x", "disk:0.4", ["circle: u + 0.5*u_n = 0.1"])
    api, u = _heat(Domain.disk(0.4))
    api.initial[0] = type(api.initial[0])(api.points, api.points[:, 0].copy())
    api.bc(u, "circle", "robin", alpha=1.0, beta=0.5, value=0.1)
    a, b = build_graph(text, NUM_MOD, SIZES), build_graph(api, NUM_MOD, SIZES)
    for key in ("node_type", "node_scalar", "spatial_pos", "function_values"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


@pytest.mark.parametrize(
    "args, message",
    [
        (("u_t - u_xx = 0", "x", "disk", []), "needs a boundary condition on 'circle'"),
        (("u_t - u_zz = 0", "x", "periodic", []), "only t, x and y"),
        (("u_t - u_xx = 0", "x", "square", ["edge: u = 0"]), "no boundary 'edge'"),
        (("u_t - u_n = 0", "x", "periodic", []), "n only in a 2-D boundary condition"),
        (("u_t = 0", "1/(x-0.5)", "periodic", []), "not finite"),
        (("u_t - u_xx = 0", "x", "disk:0.7", []), "inside the unit square"),
        (("u_t - u_xx = 0", "x", "circle", []), "unknown domain"),
        ((["u_t = 0", "v_t = 0"], "x", "periodic", []), "need as many equations"),
    ],
)
def test_bad_2d_input_names_the_problem(args, message):
    with pytest.raises(PDEParseError, match=message):
        parse_pde2d(*args)


def test_user_sdf_domain():
    d = parse_domain("sdf: abs(x-0.5) + abs(y-0.5) - 0.3")
    pde = parse_pde2d("u_t - 0.01*(u_xx+u_yy) = 0", "1", d, ["boundary: u_n = 0"])
    v = View(pde)
    (sdf,) = v.of("sdf")
    assert sdf in v.preds[v.of("uf")[0]]
    vals = v.g.function_values[1, :, 2]
    pts = v.g.function_values[1, :, :2]
    np.testing.assert_allclose(vals, np.abs(pts[:, 0] - 0.5) + np.abs(pts[:, 1] - 0.5) - 0.3, atol=1e-6)


def test_2d_derivatives_of_unknowns_and_sdfs_are_one_node_each():
    """u_t, d_k u and d_k sdf are shared by the equation and every condition (Mur on four edges)."""
    pde = PDE(domain=Domain.square(periodic=False), resolution=16)
    u = pde.unknown()
    pde.ic(u, np.zeros(16 * 16))
    pde.eq(pde.dt(u) - 1.0 * pde.laplacian(u))  # as the builders (and the text canonical form) write it
    for side in ("left", "right", "bottom", "top"):
        pde.bc(u, side, "mur", speed=2.0)
    v = View(pde)
    (uf,) = v.of("uf")
    children = [i for i, p in v.preds.items() if uf in p]
    assert sorted(v.types[i] for i in children) == ["dt", "dx", "dy", "ic"]
    omega = next(s for s in v.of("sdf") if s in v.preds[uf])
    assert sorted(v.types[i] for i, p in v.preds.items() if omega in p) == ["dx", "dy", "uf"]
    # and the text API writes the same graph
    text = parse_pde2d("u_t - (u_xx + u_yy) = 0", "0", "square", ["*: u_t + 2*u_n = 0"], resolution=16)
    for key in ("node_type", "spatial_pos", "node_scalar"):
        np.testing.assert_array_equal(getattr(View(text).g, key), getattr(v.g, key))


def test_equivalent_texts_give_the_family_builders_graph():
    from foundry.pde.data.pde2d_builders import dcr_equation

    texts = [
        "u_t - 0.01*(u_xx + u_yy) + 0.5*u^2 + (0.3*u^2)_x + (0.2*u)_x - u^3 = 0",
        "u_t + (0.2*u + 0.3*u^2)_x + 0.5*u^2 - u^3 = 0.01*u_yy + 0.01*u_xx",
    ]
    graphs = [View(parse_pde2d(t, "sin(2*pi*x)", resolution=16)).g for t in texts]
    built = PDE(domain=Domain.square(), resolution=16)
    u = built.unknown()
    built.ic(u, np.sin(2 * np.pi * built.points[:, 0]))
    dcr_equation(built, u, 0.01, [0.0, 0.5, -1.0], [0.2, 0.3, 0.0], [0.0, 0.0, 0.0], None)
    graphs.append(View(built).g)
    for g in graphs[1:]:
        for key in ("node_type", "node_scalar", "spatial_pos"):
            np.testing.assert_array_equal(getattr(g, key), getattr(graphs[0], key))


def test_a_steady_problem_has_no_initial_condition_and_no_ic_node():
    pde = parse_pde2d(
        "-0.1*(u_xx + u_yy) + u = sin(pi*x)*cos(pi*y)", domain="disk:0.4", bcs=["circle: u + 0.5*u_n = 0"]
    )
    assert pde.steady and pde.evolved == [False] and not pde.initial
    v = View(pde)
    assert v.of("ic") == [] and v.of("dt") == []
    (uf,) = v.of("uf")
    assert v.pred_types(uf) == ["Mod0", "Mod1", "Mod2", "sdf"]
    # functions: the domain sdf and the source field, no initial condition
    assert (np.abs(v.g.function_values).sum(axis=(1, 2)) > 0).sum() == 2
    with pytest.raises(ValueError, match="no time derivative"):
        pde.ic(pde.unknowns[0], lambda p: p[:, 0])
        pde.check()


def test_a_pressure_is_an_unknown_without_initial_condition():
    text = [
        "u_t - 0.01*(u_xx + u_yy) + (u^2)_x + (u*v)_y + p_x = 0",
        "v_t - 0.01*(v_xx + v_yy) + (u*v)_x + (v^2)_y + p_y = 0",
        "u_x + v_y = 0",
    ]
    pde = parse_pde2d(text, ["sin(2*pi*y)", "sin(2*pi*x)"], unknowns="u,v,p")
    assert pde.evolved == [True, True, False] and not pde.steady
    v = View(pde, target=2)
    assert len(v.of("ic")) == 2 and len(v.of("eq0")) == 3
    # the target's Mod nodes come first and feed p's uf, which has no ic successor
    p_uf = [i for i in v.of("uf") if v.pred_types(i) == ["Mod0", "Mod1", "Mod2"] and 0 in v.preds[i]]
    assert len(p_uf) == 1
    assert not any(v.types[j] == "ic" for j in v.types if p_uf[0] in v.preds[j])
    # initial conditions lead the function list, in unknown order
    fv = v.g.function_values
    np.testing.assert_allclose(fv[0, :, 2], np.sin(2 * np.pi * pde.points[:, 1]), atol=1e-6)
    np.testing.assert_allclose(fv[1, :, 2], np.sin(2 * np.pi * pde.points[:, 0]), atol=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-u_xx - u_yy + u = 1", "x", "periodic", []), "none: the problem is time-independent"),
        (
            (["u_t - v = 0", "v_t - u_xx = 0", "u_x + v_y + w = 0"], ["x"], "periodic", [], "u,v,w"),
            "one each for u, v",
        ),
        (("1 = 0", (), "periodic", []), "does not contain an unknown"),
    ],
)
def test_initial_conditions_belong_to_the_evolved_unknowns(args, message):
    with pytest.raises(PDEParseError, match=message):
        parse_pde2d(*args)


def test_field_coefficients_in_a_robin_condition_api_and_text_agree():
    """The reference's field-valued coefficients: a(x, y) u + b(x, y) u_n = c(x, y) on the circle."""
    pde = PDE(domain=Domain.disk(0.4), resolution=16)
    u = pde.unknown()
    pde.ic(u, lambda p: p[:, 0])
    pde.eq(pde.dt(u) - 0.01 * pde.laplacian(u))
    pde.bc(
        u,
        "circle",
        "robin",
        value=lambda p: 0.2 * p[:, 0] * p[:, 1],
        alpha=lambda p: 1 + 0.5 * np.sin(np.pi * p[:, 0]),
        beta=lambda p: 0.5 + 0.25 * np.cos(np.pi * p[:, 1]),
    )
    text = parse_pde2d(
        "u_t - 0.01*(u_xx + u_yy) = 0",
        "x",
        "disk:0.4",
        ["circle: (1 + 0.5*sin(pi*x))*u + (0.5 + 0.25*cos(pi*y))*u_n = 0.2*x*y"],
        resolution=16,
    )
    a, b = View(pde), View(text)
    assert a.types == b.types and a.preds == b.preds
    np.testing.assert_allclose(a.g.function_values, b.g.function_values, atol=1e-6)
    assert len(a.of("cf")) == 3  # a, b (one node shared by both normal-derivative terms) and the value
