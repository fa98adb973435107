"""Tests of the 2-D family files (`foundry.pde.data.generate2d`) and their PDE builders."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from foundry.pde.data.generate2d import (
    DISK,
    FAMILIES,
    GRAPH_SIZES,
    STEADY,
    Generate2DConfig,
    draw_chunk,
    generate2d,
)
from foundry.pde.data.mv_dcr2d import solve_mv_dcr
from foundry.pde.data.spectral2d import solve_dcr
from foundry.pde.graph.dag import GRAPH_KEYS, NODE_TYPE_ID
from foundry.pde.graph.domain import Domain

G, T = 16, 5
# coarse steps and one solve per member (no refinement) keep the files cheap (about 3 s for all six)
SETTINGS = {
    "dcr-periodic": {"dt": 0.0125, "refine": False, "chunk_size": 8},
    "wave-periodic": {},
    "dcr-square": {"dt": 0.00625, "refine": False, "chunk_size": 8, "num_samples": 2},
    "dcr-disk": {"dt": 0.0125, "refine": False, "chunk_size": 8},
    "wave-square-mur": {},
    "wave-disk-mur": {},
    "mvdcr-periodic": {"dt": 0.00625, "refine": False},
    "ins-periodic": {"num_samples": 6, "chunk_size": 2, "refine": False},
    "swe-periodic": {"num_samples": 3, "chunk_size": 1, "refine": False},
    "steady-periodic": {},
    "steady-square": {},
    "steady-disk": {},
}


def config(family: str, **kw) -> Generate2DConfig:
    base = {"family": family, "num_samples": 4, "resolution": G, "num_t": T, "chunk_size": 4, "seed": 3}
    return Generate2DConfig(**(base | SETTINGS[family] | kw))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[Generate2DConfig, dict]]:
    out = {}
    for fam in FAMILIES:
        cfg = config(fam)
        path = tmp_path_factory.mktemp("g2d") / f"{fam}.h5"
        assert generate2d(cfg, path, progress=False) == cfg.num_samples
        with h5py.File(path, "r") as f:
            out[fam] = (cfg, {k: f[k][:] for k in f} | {"attrs": dict(f.attrs)})
    return out


def test_shapes_dtypes_and_ic_rows(files):
    n = GRAPH_SIZES.num_nodes
    for fam, (cfg, d) in files.items():
        rows, frames = cfg.num_samples, 1 if fam in STEADY else T
        assert d["u"].shape == (rows, frames, G, G) and d["u"].dtype == np.float32
        assert (
            d["var"].dtype == np.int8 and d["t"].shape == (frames,) and d["x"].shape == d["y"].shape == (G,)
        )
        expect = {
            "node_type": np.uint8,
            "spatial_pos": np.uint8,
            "attn_mask": np.bool_,
            "in_degree": np.uint8,
        }
        for key, dtype in expect.items():
            assert d[key].dtype == dtype, (fam, key)
        assert d["node_type"].shape == (rows, n) and d["attn_mask"].shape == (rows, n, n)
        assert d["function_values"].shape == (rows, 8, G * G, 3) and d["function_values"].dtype == np.float32
        assert set(GRAPH_KEYS) <= set(d)
        assert ("mask" in d) == (fam in DISK)
        a = d["attrs"]
        assert a["family"] == fam and a["dim"] == 2 and a["resolution"] == G and a["num_mod"] == 3
        assert np.all(np.isfinite(d["u"])) and np.abs(d["u"]).max() <= 10
        # the initial condition of the target (function row = unknown index) is frame 0, on Domain.grid
        dom = Domain.square(periodic=fam.endswith("periodic"))
        np.testing.assert_allclose(
            np.stack(np.meshgrid(d["x"], d["y"], indexing="ij"), -1).reshape(-1, 2), dom.grid(G)
        )
        if fam in STEADY:  # no initial condition, one frame at t = 0
            assert d["t"][0] == 0 and not (d["node_type"] == NODE_TYPE_ID["ic"]).any()
            continue
        for r in range(rows):
            if fam == "ins-periodic" and d["var"][r] == 2:  # the pressure has no initial condition
                continue
            fv = d["function_values"][r, d["var"][r]]
            np.testing.assert_allclose(fv[:, :2], dom.grid(G), atol=1e-6)
            np.testing.assert_array_equal(fv[:, 2], d["u"][r, 0].reshape(-1))


def test_periodic_dcr_row_matches_direct_solve(files):
    cfg, d = files["dcr-periodic"]
    r = len(d["u"]) - 1
    m = int(d["member"][r])
    p = draw_chunk(cfg, m // cfg.chunk_size)
    b = slice(m % cfg.chunk_size, m % cfg.chunk_size + 1)
    u, ok = solve_dcr(p.params.u0[b], p.params.a[b], p.params.c0[b], p.params.c1[b], p.params.c2[b],
                      p.params.source[b], num_t=T, dt=float(d["dt"][r]))  # fmt: skip
    assert ok.all()
    np.testing.assert_allclose(d["u"][r], u[0, :, ::2, ::2].numpy(), rtol=0, atol=1e-5)


def test_mv_rows_are_the_unknowns(files):
    cfg, d = files["mvdcr-periodic"]
    assert list(d["var"]) == [0, 1, 0, 1] and d["member"][0] == d["member"][1]
    p = draw_chunk(cfg, int(d["member"][0]) // cfg.chunk_size).params
    b = slice(int(d["member"][0]) % cfg.chunk_size, int(d["member"][0]) % cfg.chunk_size + 1)
    args = [getattr(p, k)[b] for k in ("u0", "a", "lin", "flux_x", "flux_y", "q0", "qx", "qy", "source")]
    u, ok = solve_mv_dcr(*args, num_t=T, dt=float(d["dt"][0]))
    for k in range(2):
        np.testing.assert_allclose(d["u"][k], u[0, :, k, ::2, ::2].numpy(), rtol=0, atol=1e-5)
    # the target's Mod nodes come first: the two rows of one member differ in their graph order only
    assert (d["node_type"][0] == d["node_type"][1]).all() and not (
        d["spatial_pos"][0] == d["spatial_pos"][1]
    ).all()


@pytest.mark.parametrize("fam", DISK)
def test_disk_mask_is_the_sdf_sign(files, fam):
    cfg, d = files[fam]
    grid = Domain.square(periodic=False).grid(G)
    fn_row = {"dcr-disk": 1, "wave-disk-mur": 2}.get(fam, 0)  # after the initial conditions, if any
    for r in range(len(d["u"])):
        m = int(d["member"][r])
        radius = float(draw_chunk(cfg, m // cfg.chunk_size).disk.radius[m % cfg.chunk_size])
        sdf = np.hypot(grid[:, 0] - 0.5, grid[:, 1] - 0.5) - radius
        np.testing.assert_allclose(d["function_values"][r, fn_row, :, 2], sdf, atol=1e-6)  # the domain sdf
        np.testing.assert_array_equal(d["mask"][r].reshape(-1), (sdf < 0).astype(np.uint8))
        assert 0 < d["mask"][r].sum() < G * G


def test_wave_system_graph(files):
    for fam, bcs in (("wave-periodic", 0), ("wave-square-mur", 8), ("wave-disk-mur", 2)):
        _, d = files[fam]
        types = d["node_type"][0]
        assert (types == NODE_TYPE_ID["uf"]).sum() == 2
        assert (types == NODE_TYPE_ID["eq0"]).sum() == 2 + bcs
        eq0 = np.flatnonzero(types == NODE_TYPE_ID["eq0"])
        assert (d["out_degree"][0][eq0] == 1).all()  # sinks: 1 + out-degree 0
        assert (d["var"] == 0).all()


def test_resume_and_determinism(tmp_path):
    cfg = config("wave-periodic", num_samples=3)
    generate2d(cfg, tmp_path / "a.h5", progress=False)  # stops inside the first chunk
    assert generate2d(cfg.model_copy(update={"num_samples": 6}), tmp_path / "a.h5", progress=False) == 6
    generate2d(cfg.model_copy(update={"num_samples": 6}), tmp_path / "b.h5", progress=False)
    with h5py.File(tmp_path / "a.h5") as fa, h5py.File(tmp_path / "b.h5") as fb:
        for key in ("u", "var", "member", "function_values", "spatial_pos"):
            np.testing.assert_array_equal(fa[key][:], fb[key][:])
        assert fa.attrs["next_chunk"] == fb.attrs["next_chunk"]
    with pytest.raises(ValueError, match="differs"):
        generate2d(config("wave-periodic", num_samples=7, seed=4), tmp_path / "a.h5", progress=False)


def test_config_checks():
    with pytest.raises(ValueError, match="divide"):
        Generate2DConfig(dt=0.003)
    with pytest.raises(ValueError):
        Generate2DConfig(family="heat")
    assert Generate2DConfig(family="wave-square-mur").wave_dt * 2 * 62 <= 0.5 + 1e-12
    a, b = draw_chunk(config("dcr-disk"), 1), draw_chunk(config("dcr-disk"), 1)
    np.testing.assert_array_equal(a.params.u0.numpy(), b.params.u0.numpy())  # seeded per chunk


@pytest.mark.parametrize("fam", ["wave-periodic", "dcr-disk"])
def test_2d_batches_hold_the_solution_at_their_points_inside_the_domain(fam, tmp_path):
    """Host (`PDEDataset.sample`) and device (`DeviceSampler`) batches: labels are u at the drawn
    (t, x, y), and on a disk every drawn point is inside it."""
    from foundry.pde.data.dataset import DeviceSampler, PDEDataset

    generate2d(config(fam, num_samples=4), tmp_path / "d.h5", progress=False)
    ds = PDEDataset(tmp_path / "d.h5")
    idx = np.array([2, 0, 3])
    batches = [
        ds.sample(idx, 200, np.random.default_rng(0)),
        DeviceSampler(ds, "cpu", seed=1).sample(idx, 200),
    ]
    for graph, coords, labels in batches:
        c = coords.numpy()
        ti = np.searchsorted(ds.t, c[..., 0])
        xi = np.rint(c[..., 1] * (len(ds.x) - (0 if fam == "wave-periodic" else 1))).astype(int)
        yi = np.rint(c[..., 2] * (len(ds.y) - (0 if fam == "wave-periodic" else 1))).astype(int)
        np.testing.assert_allclose(ds.x[xi], c[..., 1], atol=1e-6)
        for b, i in enumerate(idx):
            np.testing.assert_allclose(labels[b].numpy(), ds.u[i, ti[b], xi[b], yi[b]], atol=1e-6)
            if ds.mask is not None:
                assert ds.mask[i, xi[b], yi[b]].all()
        assert graph["function_values"].shape[-1] == 3


def test_steady_rows_are_the_direct_solve(files):
    from foundry.pde.data.steady2d import solve_steady

    for fam in STEADY:
        cfg, d = files[fam]
        m = int(d["member"][0])
        u, ok = solve_steady(draw_chunk(cfg, m // cfg.chunk_size).params)
        assert ok[m % cfg.chunk_size]
        np.testing.assert_allclose(d["u"][0, 0], u[m % cfg.chunk_size, ::2, ::2].numpy(), rtol=0, atol=1e-5)


def test_a_folder_mixes_steady_and_time_dependent_files(files, tmp_path):
    """Steady rows repeat their one frame over the folder's time grid but are drawn and scored at
    t = 0 only; the time-dependent rows use every frame."""
    from foundry.pde.data.dataset import DeviceSampler, PDEDataset

    for fam in ("steady-disk", "wave-periodic"):
        generate2d(files[fam][0], tmp_path / f"{fam}.h5", progress=False)
    ds = PDEDataset(tmp_path)  # name order: steady-disk rows first
    assert ds.u.shape[1] == T and list(ds.num_frames) == [1] * 4 + [T] * 4
    idx = np.arange(8)
    for _, coords, _ in (
        ds.sample(idx, 300, np.random.default_rng(0)),
        DeviceSampler(ds, "cpu").sample(idx, 300),
    ):
        t = coords[..., 0].numpy()
        assert (t[:4] == 0).all() and len(np.unique(t[4:])) == T
    mask = ds.full_grid_mask(idx).reshape(8, T, G, G)
    assert not mask[:4, 1:].any() and mask[4:].all()
    np.testing.assert_array_equal(mask[:4, 0], ds.mask[:4])


def test_ins_rows_are_u_v_and_p_of_one_member(files):
    from foundry.pde.data.ins2d import solve_ins

    cfg, d = files["ins-periodic"]
    assert list(d["var"][:3]) == [0, 1, 2] and len(set(d["member"][:3])) == 1
    m = int(d["member"][0])
    p = draw_chunk(cfg, m // cfg.chunk_size).params
    b = slice(m % cfg.chunk_size, m % cfg.chunk_size + 1)
    s_u = p.s_u[b] if p.s_u is not None else None
    s_v = p.s_v[b] if p.s_v is not None else None
    uvp, ok = solve_ins(p.u0[b], p.v0[b], p.nu[b], s_u, s_v, num_t=T, dt=float(d["dt"][0]))
    assert ok.all()
    for k in range(3):
        np.testing.assert_allclose(d["u"][k], uvp[0, :, k, ::2, ::2].numpy(), rtol=0, atol=1e-5)
    assert (d["node_type"][2] == NODE_TYPE_ID["ic"]).sum() == 2
