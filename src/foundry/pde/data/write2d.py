"""HDF5 files of solved 2-D family members (PDEformer-2 data): writer, reader and a small generator.

Layout of one file (``FORMAT_VERSION`` 1), N = kept members:

- ``u`` float32 [N, T, n, n] (scalar families) or [N, T, K, n, n] (MV-DCR), ``u[s, t, (k,) i, j]`` at
  (x, y) = (i/n, j/n); one HDF5 chunk per member, so reading one member touches only its bytes.
- ``t`` [T], ``x`` [n], ``y`` [n] float64: frame times and the periodic grid coordinates.
- ``params/<name>``: the member's coefficients and fields with a leading axis N (the fields of the
  family's batch dataclass, e.g. ``a``, ``c0``, ``source``): fields on the grid (last two axes n x n)
  in float32 like ``u``, coefficients in float64 so the solved equation is stored exactly.
- attributes: ``family``, ``format_version``, ``command`` (the generating command), ``seed``, ``n``,
  ``num_t``, ``num_components``, ``num_candidates`` (members solved), ``num_dropped`` (members with
  ``ok = False``, not stored), and whatever extra attributes the caller adds (e.g. ``dt``).

Only members whose solve stayed bounded (``ok``) are written; the count of the others is recorded.

    PYTHONPATH=src python -m foundry.pde.data.write2d OUT.h5 --family mv_dcr2d --k 2 --batch 8 --n 64 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foundry.pde.data.families2d import sample_dcr, sample_wave
from foundry.pde.data.mv_dcr2d import sample_mv_dcr, solve_mv_dcr
from foundry.pde.data.spectral2d import solve_dcr, solve_wave

FORMAT_VERSION = 1
FAMILIES = ("dcr2d", "wave2d", "mv_dcr2d")


@dataclass
class Data2D:
    """The contents of a file written by `write_2d` (numpy arrays, leading axis = kept members)."""

    family: str
    u: np.ndarray
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    params: dict[str, np.ndarray]
    attrs: dict[str, Any]


def batch_params(batch: Any) -> dict[str, torch.Tensor]:
    """A family batch dataclass (`DCRBatch`, `WaveBatch`, `MVDCRBatch`) as {field name: tensor}."""
    return {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}


def write_2d(
    path: str | Path,
    family: str,
    u: torch.Tensor,
    ok: torch.Tensor,
    params: Mapping[str, torch.Tensor],
    t: torch.Tensor | np.ndarray,
    *,
    command: str,
    seed: int,
    attrs: Mapping[str, Any] | None = None,
) -> int:
    """Write the members of a solved batch with ``ok`` True to a new HDF5 file; return how many.

    Parameters
    ----------
    path : str or Path
        File to create (overwritten if it exists).
    family : str
        Family name stored in the attributes (one of `FAMILIES` for the generators here).
    u : [B, T, n, n] or [B, T, K, n, n]
        Solution frames (any float dtype; stored as float32).
    ok : [B] bool
        Members to keep.
    params : {name: [B, ...] tensor}
        Per-member coefficients and fields, e.g. `batch_params` of the sampled batch.
    t : [T]
        Frame times.
    command, seed
        How the batch was generated (stored as attributes, for reproduction).
    attrs : mapping, optional
        Further scalar attributes (e.g. ``dt``).
    """
    import h5py

    keep = ok.detach().cpu().bool()
    u_np = u.detach().cpu()[keep].numpy().astype(np.float32)
    n = u.shape[-1]
    coords = np.arange(n, dtype=np.float64) / n
    with h5py.File(path, "w") as f:
        chunks = (1, *u_np.shape[1:]) if u_np.shape[0] else None
        f.create_dataset("u", data=u_np, chunks=chunks)
        f.create_dataset("t", data=np.asarray(t, dtype=np.float64))
        f.create_dataset("x", data=coords)
        f.create_dataset("y", data=coords)
        group = f.create_group("params")
        for name, value in params.items():
            v = value.detach().cpu()[keep].numpy()
            is_field = v.ndim >= 3 and v.shape[-2:] == (n, n)
            group.create_dataset(name, data=v.astype(np.float32 if is_field else np.float64))
        f.attrs.update(
            {
                "family": family,
                "format_version": FORMAT_VERSION,
                "command": command,
                "seed": seed,
                "n": n,
                "num_t": u.shape[1],
                "num_components": u.shape[2] if u.ndim == 5 else 1,
                "num_candidates": int(keep.numel()),
                "num_dropped": int((~keep).sum()),
            }
        )
        f.attrs.update(dict(attrs or {}))
    return int(keep.sum())


def read_2d(path: str | Path) -> Data2D:
    """Read a file written by `write_2d` back into numpy arrays (the stored dtypes)."""
    import h5py

    with h5py.File(path, "r") as f:
        return Data2D(
            family=str(f.attrs["family"]),
            u=f["u"][:],
            t=f["t"][:],
            x=f["x"][:],
            y=f["y"][:],
            params={name: f["params"][name][:] for name in f["params"]},
            attrs=dict(f.attrs),
        )


def generate_2d(
    path: str | Path,
    family: str,
    batch: int,
    n: int,
    seed: int,
    k: int = 2,
    dt: float = 2.5e-3,
    num_t: int = 101,
    command: str | None = None,
) -> int:
    """Sample ``batch`` members of ``family`` (seeded), solve them on t in [0, 1] and write the bounded ones.

    DCR and MV-DCR use a single time step ``dt`` (no refinement: failed members are dropped and
    counted); Wave is exact in time. Returns the number of members written.
    """
    gen = torch.Generator().manual_seed(seed)
    if family == "dcr2d":
        p: Any = sample_dcr(gen, batch, n)
        u, ok = solve_dcr(p.u0, p.a, p.c0, p.c1, p.c2, p.source, num_t=num_t, dt=dt)
    elif family == "wave2d":
        p = sample_wave(gen, batch, n)
        u, ok = solve_wave(p.u0, p.v0, p.c2, p.damping, p.source, num_t=num_t)
    elif family == "mv_dcr2d":
        p = sample_mv_dcr(gen, batch, n, k=k)
        u, ok = solve_mv_dcr(
            p.u0, p.a, p.lin, p.flux_x, p.flux_y, p.q0, p.qx, p.qy, p.source, num_t=num_t, dt=dt
        )
    else:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
    if command is None:  # the command that regenerates this file
        command = shlex.join(
            ["python", "-m", "foundry.pde.data.write2d", str(path), "--family", family, "--batch", str(batch)]
            + ["--n", str(n), "--seed", str(seed), "--k", str(k), "--dt", str(dt), "--num-t", str(num_t)]
        )
    extra = {"dt": dt} if family != "wave2d" else {}
    t = np.linspace(0.0, 1.0, num_t)
    return write_2d(path, family, u, ok, batch_params(p), t, command=command, seed=seed, attrs=extra)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: generate one file of a 2-D family."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--family", choices=FAMILIES, default="dcr2d")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=2, help="MV-DCR components")
    ap.add_argument("--dt", type=float, default=2.5e-3)
    ap.add_argument("--num-t", type=int, default=101)
    args = ap.parse_args(argv)
    kept = generate_2d(args.out, args.family, args.batch, args.n, args.seed, args.k, args.dt, args.num_t)
    print(f"{args.out}: {kept} of {args.batch} {args.family} members kept")


if __name__ == "__main__":
    main()
