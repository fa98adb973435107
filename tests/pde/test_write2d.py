"""2-D dataset files: round trip of solution, parameters and attributes; dropped members are counted."""

import shlex

import h5py
import numpy as np
import pytest
import torch

from foundry.pde.data.families2d import sample_dcr, sample_wave
from foundry.pde.data.mv_dcr2d import sample_mv_dcr, solve_mv_dcr
from foundry.pde.data.spectral2d import solve_dcr, solve_wave
from foundry.pde.data.write2d import batch_params, generate_2d, main, read_2d, write_2d

N = 8


def solved(family):
    gen = torch.Generator().manual_seed(0)
    if family == "dcr2d":
        p = sample_dcr(gen, 3, N)
        return p, *solve_dcr(p.u0, p.a, p.c0, p.c1, p.c2, p.source, num_t=5, t_end=0.1, dt=5e-3)
    if family == "wave2d":
        p = sample_wave(gen, 3, N)
        return p, *solve_wave(p.u0, p.v0, p.c2, p.damping, p.source, num_t=5, t_end=0.1)
    p = sample_mv_dcr(gen, 3, N, k=3)
    args = (p.u0, p.a, p.lin, p.flux_x, p.flux_y, p.q0, p.qx, p.qy, p.source)
    return p, *solve_mv_dcr(*args, num_t=5, t_end=0.1, dt=5e-3)


@pytest.mark.parametrize("family", ["dcr2d", "wave2d", "mv_dcr2d"])
def test_round_trip_keeps_only_bounded_members(tmp_path, family):
    p, u, ok = solved(family)
    ok = ok.clone()
    ok[1] = False  # as if member 1 had blown up
    t = np.linspace(0, 0.1, 5)
    path = tmp_path / "d.h5"
    kept = write_2d(path, family, u, ok, batch_params(p), t, command="cmd --x", seed=7, attrs={"dt": 5e-3})
    d = read_2d(path)
    assert kept == int(ok.sum()) == 2 and d.family == family
    assert d.u.dtype == np.float32 and np.array_equal(d.u, u[ok].numpy().astype(np.float32))
    assert np.array_equal(d.t, t) and np.array_equal(d.x, np.arange(N) / N) and np.array_equal(d.y, d.x)
    for name, value in batch_params(p).items():
        stored = d.params[name]
        want = value[ok].numpy()
        if stored.dtype == np.float32:  # fields on the grid
            assert want.shape[-2:] == (N, N) and np.array_equal(stored, want.astype(np.float32))
        else:  # coefficients: exact
            assert np.array_equal(stored, want)
    a = d.attrs
    assert (a["command"], a["seed"], a["n"], a["num_t"], a["dt"]) == ("cmd --x", 7, N, 5, 5e-3)
    assert (a["num_candidates"], a["num_dropped"]) == (3, 1)
    assert a["num_components"] == (3 if family == "mv_dcr2d" else 1)


def test_all_dropped_writes_an_empty_file(tmp_path):
    p, u, ok = solved("dcr2d")
    write_2d(
        tmp_path / "e.h5", "dcr2d", u, torch.zeros_like(ok), batch_params(p), np.zeros(5), command="", seed=0
    )
    d = read_2d(tmp_path / "e.h5")
    assert d.u.shape == (0, 5, N, N) and d.attrs["num_dropped"] == 3


def test_generator_records_a_command_that_reproduces_the_file(tmp_path, capsys):
    path = tmp_path / "g.h5"
    kept = generate_2d(path, "mv_dcr2d", 2, N, seed=3, k=2, dt=5e-3, num_t=3)
    d = read_2d(path)
    assert d.u.shape == (kept, 3, 2, N, N) and d.attrs["seed"] == 3
    argv = shlex.split(d.attrs["command"])[3:]  # after "python -m foundry.pde.data.write2d"
    argv[0] = str(tmp_path / "again.h5")
    main(argv)
    assert "members kept" in capsys.readouterr().out
    with h5py.File(tmp_path / "again.h5") as f:
        assert np.array_equal(f["u"][:], d.u)
    with pytest.raises(ValueError):
        generate_2d(path, "nope", 1, N, seed=0)
