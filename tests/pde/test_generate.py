"""Generation: deterministic by seed, resumable, graphs stored beside the solutions."""

import h5py
import numpy as np
import pytest

from foundry.pde.data.dataset import PDEDataset
from foundry.pde.data.generate import GenerateConfig, generate
from foundry.pde.data.sinus import SinusParams, params_to_pde
from foundry.pde.graph.dag import build_graph

CFG = dict(num_x=32, num_t=6, dt=1e-3, chunk_size=8, seed=3)


def read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in f}, dict(f.attrs)


def test_deterministic_and_resumable(tmp_path):
    full = generate(GenerateConfig(num_samples=12, **CFG), tmp_path / "a.h5", progress=False)
    assert full == 12
    generate(GenerateConfig(num_samples=5, **CFG), tmp_path / "b.h5", progress=False)  # "interrupted"
    generate(GenerateConfig(num_samples=12, **CFG), tmp_path / "b.h5", progress=False)  # resumed
    a, attrs = read(tmp_path / "a.h5")
    b, _ = read(tmp_path / "b.h5")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert a["u"].shape == (12, 6, 32) and np.abs(a["u"]).max() <= 10
    assert attrs["num_candidates"] >= 12 and attrs["seed"] == 3
    with pytest.raises(ValueError, match="num_x=64 differs"):
        generate(GenerateConfig(num_samples=13, **{**CFG, "num_x": 64}), tmp_path / "a.h5", progress=False)


def test_parallel_workers_give_the_same_file(tmp_path):
    generate(GenerateConfig(num_samples=6, **CFG), tmp_path / "one.h5", progress=False)
    generate(GenerateConfig(num_samples=6, **CFG), tmp_path / "two.h5", num_workers=2, progress=False)
    one, _ = read(tmp_path / "one.h5")
    two, _ = read(tmp_path / "two.h5")
    np.testing.assert_array_equal(one["u"], two["u"])


def test_stored_graphs_rebuild_from_stored_parameters(tmp_path):
    generate(GenerateConfig(num_samples=4, **CFG), tmp_path / "g.h5", progress=False)
    d, attrs = read(tmp_path / "g.h5")
    for i in range(4):
        p = SinusParams(
            d["c0"][i],
            d["c1"][i],
            d["source"][i],
            int(d["source_kind"][i]),
            d["kappa"][i],
            bool(d["kappa_is_field"][i]),
            d["u0"][i],
            bool(d["flux_form"][i]),
        )
        g = build_graph(params_to_pde(p, d["x"]), int(attrs["num_mod"]))
        np.testing.assert_array_equal(g.spatial_pos, d["spatial_pos"][i])
        np.testing.assert_array_equal(g.attn_mask, d["attn_mask"][i])
        np.testing.assert_allclose(d["u"][i, 0], d["u0"][i], atol=1e-6)
    ds = PDEDataset(tmp_path / "g.h5", num_mod=3)
    graph, coords, labels = ds.sample(np.array([0, 1]), 7, np.random.default_rng(0), x_shift=True)
    assert coords.shape == (2, 7, 2) and labels.shape == (2, 7) and graph["spatial_pos"].shape[0] == 2
    n = graph["node_type"].shape[1]  # trimmed to the batch's real nodes
    assert n < 64 and graph["spatial_pos"].shape[1:] == (n, n)
    with pytest.raises(ValueError, match="num_mod=3 but the model needs 5"):
        PDEDataset(tmp_path / "g.h5", num_mod=5)


def test_x_shift_moves_solution_and_functions_together(tmp_path):
    generate(GenerateConfig(num_samples=2, **CFG), tmp_path / "s.h5", progress=False)
    ds = PDEDataset(tmp_path / "s.h5")
    rng = np.random.default_rng(5)
    graph, coords, labels = ds.sample(np.array([0]), 400, rng, x_shift=True)
    # at t = 0 the label is the initial condition, i.e. the shifted IC function at the same x
    ic = graph["function_values"][0, 0]
    at0 = coords[0, :, 0] == 0
    assert at0.sum() > 10
    xi = np.searchsorted(ds.x, coords[0, at0, 1].numpy())
    np.testing.assert_allclose(labels[0, at0].numpy(), ic[xi, 1].numpy(), atol=1e-6)
    assert np.allclose(ic[:, 0].numpy(), ds.x)


def test_robin_family_file(tmp_path):
    generate(GenerateConfig(num_samples=4, boundary="robin", **CFG), tmp_path / "r.h5", progress=False)
    d, attrs = read(tmp_path / "r.h5")
    assert attrs["family"] == "sinus0-robin" and d["x"][0] == -1.0 and d["x"][-1] == 1.0
    assert d["bc_left"].shape == (4, 3) and d["bc_kinds"].shape == (4, 2)
    bv = {3, 4}  # node type ids of bv_l and bv_r
    assert all(bv <= set(types.tolist()) for types in d["node_type"])
    assert not PDEDataset(tmp_path / "r.h5").periodic
    with pytest.raises(ValueError, match="boundary must be"):
        GenerateConfig(boundary="dirichlet")


def test_coef_range_bounds_the_coefficients(tmp_path):
    generate(GenerateConfig(num_samples=8, coef_range=0.5, **CFG), tmp_path / "c.h5", progress=False)
    d, attrs = read(tmp_path / "c.h5")
    assert attrs["coef_range"] == 0.5
    assert np.abs(np.concatenate([d["c0"], d["c1"]])).max() <= 0.5
    scalar = d["source_kind"] == 1
    assert np.abs(d["source"][scalar]).max(initial=0) <= 0.5


def test_resume_a_file_written_before_boundary_and_coef_range_existed(tmp_path):
    path = tmp_path / "old.h5"
    generate(GenerateConfig(num_samples=4, **CFG), path, progress=False)
    with h5py.File(path, "a") as f:  # what files of format 1 written before these settings look like
        del f.attrs["boundary"], f.attrs["coef_range"]
    assert generate(GenerateConfig(num_samples=8, **CFG), path, progress=False) == 8
    with pytest.raises(ValueError, match="boundary=robin differs from the existing file's boundary=periodic"):
        generate(GenerateConfig(num_samples=9, boundary="robin", **CFG), path, progress=False)


def test_torch_solver_generates_the_same_file(tmp_path):
    # the GPU path (torch solver) on CPU: same accepted samples and labels as the numpy generator
    generate(GenerateConfig(num_samples=6, **CFG), tmp_path / "np.h5", progress=False)
    generate(GenerateConfig(num_samples=6, **CFG), tmp_path / "torch.h5", progress=False, device="cpu")
    a, _ = read(tmp_path / "np.h5")
    b, _ = read(tmp_path / "torch.h5")
    np.testing.assert_array_equal(a["c1"], b["c1"])
    np.testing.assert_allclose(a["u"], b["u"], atol=1e-6)
