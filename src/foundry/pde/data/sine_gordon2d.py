"""Periodic 2-D Sine-Gordon on [0, 1]^2: a family PDEformer-2 never saw in pretraining (few-shot tests).

Per member b, the system (as the training wave family writes its (u, v) system, plus ``k sin(u)``)

    u_t - v = 0,    v_t - c2 (u_xx + u_yy) + k sin(u) = 0,    u(0) = u0,  v(0) = 0,

with c2 ~ U[0.1, 1], k ~ U[0.5, 2] and u0 = `families2d.random_field` (a GRF or a sine sum, equal
odds; std / max 1). The training wave family never has ``sin(u)``.

Solver (`solve_sine_gordon`): Fourier pseudo-spectral in space on the periodic n x n grid, Strang
splitting in time: half a kick v -= dt/2 k sin(u) (pointwise, Nyquist modes dropped), the exact
linear wave flow over dt (each mode rotated with omega = sqrt(c2) |k|), half a kick. Second order
in dt, symplectic; the linear flow is exact, so there is no CFL limit from the Laplacian.

Files (`generate_sine_gordon`) follow `generate2d`'s layout (its `row_shapes` with G = 32, 21
frames; one row per member, target u, ``var`` = 0): solved on 2G points, stored at every second
point, graphs from the symbolic API (`sine_gordon_pde`, the same graph as `parse_pde2d` gives for
the text form) built with `GRAPH_SIZES`, so `PDEDataset` and `train` read them like training files.
Attribute ``family`` = ``sine-gordon-periodic``.

    PYTHONPATH=src python -m foundry.pde.data.sine_gordon2d OUT.h5 --num-samples 64 --seed 1
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from foundry.pde.data.families2d import random_field
from foundry.pde.data.generate2d import FORMAT_VERSION, GRAPH_SIZES, chunk_generator, row_shapes
from foundry.pde.data.pde2d_builders import subsample
from foundry.pde.data.spectral2d import _check_frame, _nyquist_mask, _steps_per_save, wavenumbers
from foundry.pde.graph.dag import GRAPH_KEYS, build_graph
from foundry.pde.graph.domain import Domain
from foundry.pde.graph.symbolic import PDE

Tensor = torch.Tensor
FAMILY = "sine-gordon-periodic"
C2_RANGE = (0.1, 1.0)
K_RANGE = (0.5, 2.0)
EQUATIONS = ("u_t - v = 0", "v_t - {c2!r}*(u_xx + u_yy) + {k!r}*sin(u) = 0")


@dataclass
class SineGordonBatch:
    """B members: u0 [B, n, n] on the periodic solver grid, c2 [B], k [B] (v0 = 0)."""

    u0: Tensor
    c2: Tensor
    k: Tensor


def sample_sine_gordon(gen: torch.Generator, batch: int, n: int) -> SineGordonBatch:
    """Draw ``batch`` members on the n x n periodic grid (CPU, float64)."""
    c2 = C2_RANGE[0] + (C2_RANGE[1] - C2_RANGE[0]) * torch.rand(batch, generator=gen, dtype=torch.float64)
    k = K_RANGE[0] + (K_RANGE[1] - K_RANGE[0]) * torch.rand(batch, generator=gen, dtype=torch.float64)
    return SineGordonBatch(random_field(gen, batch, n), c2, k)


def solve_sine_gordon(
    u0: Tensor,
    c2: Tensor,
    k: Tensor,
    v0: Tensor | None = None,
    num_t: int = 21,
    t_end: float = 1.0,
    dt: float = 2.5e-3,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Solve u_tt = c2 Δu - k sin(u) for a batch on the periodic square.

    Parameters
    ----------
    u0, v0 : [B, n, n]
        Initial u and u_t (v0 = 0 when omitted), on the grid (i/n, j/n).
    c2, k : [B]
    num_t, t_end : frames saved uniformly on [0, t_end]
    dt : time step; must divide the save interval

    Returns
    -------
    u : [B, num_t, n, n], ok : [B] (False where |u| left U_MAX or turned non-finite; frozen there).
    """
    dev = u0.device
    u0 = u0.to(dtype)
    bsz, n, _ = u0.shape
    c2, k = c2.to(dev, dtype)[:, None, None], k.to(dev, dtype)[:, None, None]
    steps = _steps_per_save(dt, num_t, t_end)
    mask = _nyquist_mask(n, dev, dtype)
    kx, ky = wavenumbers(n, dev, dtype)
    omega = (c2 * (kx**2 + ky**2)).sqrt()  # [B, n, n//2 + 1]
    cos, sin = torch.cos(omega * dt), torch.sin(omega * dt)
    # sin(omega dt) / omega, = dt at omega = 0 (the mean drifts with the mean velocity)
    sinc = torch.where(omega > 0, sin / omega.clamp_min(1e-30), torch.full_like(omega, dt))
    uh = torch.fft.rfft2(u0) * mask
    vh = torch.fft.rfft2(v0.to(dtype)) * mask if v0 is not None else torch.zeros_like(uh)

    def kick(uh: Tensor, vh: Tensor, h: float) -> Tensor:
        u = torch.fft.irfft2(uh, s=(n, n))
        return vh - h * k * torch.fft.rfft2(torch.sin(u)) * mask

    out = torch.empty(bsz, num_t, n, n, device=dev, dtype=dtype)
    out[:, 0] = torch.fft.irfft2(uh, s=(n, n))
    ok = _check_frame(out[:, 0], torch.ones(bsz, dtype=torch.bool, device=dev))
    for frame in range(1, num_t):
        for _ in range(steps):
            vh = kick(uh, vh, dt / 2)
            uh, vh = cos * uh + sinc * vh, -omega * sin * uh + cos * vh
            vh = kick(uh, vh, dt / 2)
        u = torch.fft.irfft2(uh, s=(n, n))
        ok = _check_frame(u, ok)
        out[:, frame] = torch.where(ok[:, None, None], u, out[:, frame - 1])
    return out, ok


def sine_gordon_pde(u0: np.ndarray, c2: float, k: float, resolution: int = 32) -> PDE:
    """The symbolic PDE of one member; u0 [G, G] on ``Domain.grid(G)`` (i/G, j/G), v0 = 0.

    The same graph as ``parse_pde2d(equations_text(c2, k), [u0 text, "0"], unknowns="u,v")``.
    """
    pde = PDE(domain=Domain.square(periodic=True), resolution=resolution)
    u, v = pde.unknown("u"), pde.unknown("v")
    pde.ic(u, np.asarray(u0, dtype=np.float64).reshape(-1))
    pde.ic(v, np.zeros(resolution * resolution))
    pde.eq(pde.dt(u) - v)
    pde.eq(pde.dt(v) + (-c2) * pde.laplacian(u) + k * pde.sin(u))
    return pde


def equations_text(c2: float, k: float) -> list[str]:
    """The member's equations as `parse_pde2d` text (unknowns "u,v")."""
    return [e.format(c2=float(c2), k=float(k)) for e in EQUATIONS]


def _config(resolution: int, num_t: int) -> SimpleNamespace:
    return SimpleNamespace(family=FAMILY, resolution=resolution, num_t=num_t, frames=num_t)


def generate_sine_gordon(
    path: str | Path,
    num_samples: int,
    seed: int = 0,
    resolution: int = 32,
    num_t: int = 21,
    dt: float = 2.5e-3,
    num_mod: int = 3,
    chunk_size: int = 16,
) -> int:
    """Write ``num_samples`` members to a new HDF5 file in `generate2d`'s layout; returns the rows.

    Chunk i draws from `generate2d.chunk_generator(seed, i)`; members whose solve failed (none in
    practice: the equation conserves an energy) or whose graph does not fit are skipped and counted.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shapes = row_shapes(_config(resolution, num_t))
    rows: dict[str, list] = {key: [] for key in shapes}
    dropped, chunk = 0, 0
    while len(rows["u"]) < num_samples:
        p = sample_sine_gordon(chunk_generator(seed, chunk), chunk_size, 2 * resolution)
        u, ok = solve_sine_gordon(p.u0, p.c2, p.k, num_t=num_t, dt=dt)
        u, u0 = subsample(u, resolution), subsample(p.u0, resolution)
        for b in range(chunk_size):
            if len(rows["u"]) == num_samples:
                break
            if not bool(ok[b]):
                dropped += 1
                continue
            try:
                graph = build_graph(
                    sine_gordon_pde(u0[b], float(p.c2[b]), float(p.k[b]), resolution), num_mod, GRAPH_SIZES
                )
            except ValueError:
                dropped += 1
                continue
            for key in GRAPH_KEYS:
                rows[key].append(getattr(graph, key))
            rows["u"].append(u[b])
            rows["var"].append(0)
            rows["member"].append(chunk * chunk_size + b)
            rows["dt"].append(dt)
            rows.setdefault("c2", []).append(float(p.c2[b]))
            rows.setdefault("k", []).append(float(p.k[b]))
        chunk += 1
    with h5py.File(path, "w") as f:
        f.create_dataset("t", data=np.linspace(0.0, 1.0, num_t))
        f.create_dataset("x", data=np.arange(resolution) / resolution)
        f.create_dataset("y", data=np.arange(resolution) / resolution)
        for key, (shape, dtype) in shapes.items():
            f.create_dataset(key, data=np.asarray(rows[key], dtype=dtype).reshape(-1, *shape))
        f.create_dataset("c2", data=np.asarray(rows["c2"]))
        f.create_dataset("k", data=np.asarray(rows["k"]))
        f.attrs.update(
            {
                "family": FAMILY,
                "seed": seed,
                "resolution": resolution,
                "num_t": num_t,
                "num_mod": num_mod,
                "chunk_size": chunk_size,
                "dim": 2,
                "format_version": FORMAT_VERSION,
                "graph_sizes": json.dumps(asdict(GRAPH_SIZES)),
                "solver_n": 2 * resolution,
                "dts": np.asarray([dt]),
                "num_candidates": chunk * chunk_size,
                "num_dropped": dropped,
                "equations": json.dumps(list(EQUATIONS)),
            }
        )
    return num_samples


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--num-samples", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dt", type=float, default=2.5e-3)
    args = ap.parse_args(argv)
    generate_sine_gordon(args.out, args.num_samples, args.seed, dt=args.dt)
    print(f"{args.out}: {args.num_samples} {FAMILY} members")


if __name__ == "__main__":
    main()
