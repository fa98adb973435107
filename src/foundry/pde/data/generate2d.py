"""Generate PDEformer-2 training files of 2-D families: solutions and their graphs in one HDF5 file.

One file per family (`Generate2DConfig.family`):

- ``dcr-periodic``: DCR on the periodic square, `spectral2d.solve_dcr_refining`;
- ``wave-periodic``: Wave (the (u, v) system) on the periodic square, `spectral2d.solve_wave` (exact in t);
- ``dcr-square``: DCR on the square, a random D-type/N-type Robin condition per edge
  (`sample_conditions`), `fd2d.solve_dcr_square` with refinement;
- ``dcr-disk``: DCR on a disk of radius U[0.3, 0.5] about (0.5, 0.5), one condition on the circle
  drawn as on the square's edges (Dirichlet, Neumann or Robin; `sample_conditions`),
  `fd2d.solve_dcr_disk` with refinement;
- ``wave-square-mur``: Wave on the square, Mur u_t + c u_n = 0 on every edge, `fd2d.solve_wave_square`;
- ``wave-disk-mur``: Wave on a disk of radius U[0.3, 0.5] about (0.5, 0.5), Mur u_t + c u_n = 0 on the
  circle, `fd2d.solve_wave_disk` (cut cells);
- ``mvdcr-periodic``: MV-DCR with K = ``mv_components`` unknowns, `mv_dcr2d.solve_mv_dcr_refining`;
- ``ins-periodic``: incompressible Navier-Stokes (u, v, p; DC-DCR's NS member) of `ins2d`,
  `ins2d.solve_ins_refining`; three rows per member (targets u, v and p);
- ``swe-periodic``: shallow water with bathymetry (h, u, v) of `swe2d`, `swe2d.solve_swe_refining`;
  three rows per member;
- ``steady-periodic``, ``steady-square``, ``steady-disk``: the time-independent DCR problem
  -a Δu + c0 u + (c1 u)_x + (c2 u)_y + s = 0 of `steady2d` (conditions on the square and the disk
  drawn as for the DCR files), one direct sparse solve per member; one frame, t = 0.

Members are drawn by `families2d` / `mv_dcr2d` (non-periodic fields: periodic draws on 2G - 2
points closed to 2G - 1 nodes), solved on a grid twice as fine as the stored one (2G periodic
points, 2G - 1 nodes) and stored at every second point, G per axis, on ``num_t`` frames of [0, 1].
Their PDEs come from `pde2d_builders` and their graphs from `build_graph` with `GRAPH_SIZES`.
Members that left |u| <= 10 or turned non-finite at every time step tried, or whose graph does not
fit `GRAPH_SIZES`, are dropped and counted.

Rows: one per unknown the file targets. MV-DCR gives K rows per member, INS and SWE three (the graph
built with ``target=k``, ``u`` = unknown k). The wave gives one row, u (``target=0``): the solvers return u
only, so v = u_t is in the graph (an unknown with its initial condition) but not a stored target.

Work is cut into chunks of ``chunk_size`` members; chunk i draws from a torch generator seeded with
``SeedSequence([seed, i])``, so the file depends only on the config (not on interruptions):
the file records the next chunk and how many of its rows are already stored, and a rerun with the
same config (any ``num_samples``) continues where it stopped. File layout: `generate2d`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foundry.pde.data.conditions2d import DISK_RADIUS, close_nodes, sample_conditions
from foundry.pde.data.families2d import DCRBatch, WaveBatch, sample_dcr, sample_wave, uniform
from foundry.pde.data.fd2d import (
    Disk,
    SquareBC,
    solve_dcr_disk,
    solve_dcr_square,
    solve_wave_disk,
    solve_wave_square,
)
from foundry.pde.data.generate2d_config import (  # noqa: F401 (re-exported)
    DISK,
    FAMILIES,
    PERIODIC,
    STEADY,
    Family,
    Generate2DConfig,
)
from foundry.pde.data.ins2d import INSBatch, ins_pde, sample_ins, solve_ins_refining
from foundry.pde.data.mv_dcr2d import MVDCRBatch, sample_mv_dcr, solve_mv_dcr_refining
from foundry.pde.data.pde2d_builders import (
    BoundaryForms,
    dcr_disk_pde,
    dcr_periodic_pde,
    dcr_square_pde,
    impose_disk,
    impose_square_dirichlet,
    mur_bc,
    mv_dcr_pde,
    subsample,
    wave_disk_mur_pde,
    wave_periodic_pde,
    wave_square_mur_pde,
)
from foundry.pde.data.spectral2d import refine_failed, solve_dcr_refining, solve_wave
from foundry.pde.data.steady2d import SteadyBatch, sample_steady, solve_steady, steady_pde
from foundry.pde.data.swe2d import SWEBatch, sample_swe, solve_swe_refining, swe_pde
from foundry.pde.graph.dag import GRAPH_KEYS, GraphSizes, build_graph
from foundry.pde.graph.symbolic import PDE

FORMAT_VERSION = 1
GRAPH_SIZES = GraphSizes.for_dim(2)
# stored dtypes of the graph arrays (values fit: types < 128, degrees < 32, spatial positions < 16)
GRAPH_DTYPES = {
    "node_type": np.uint8,
    "node_scalar": np.float32,
    "function_values": np.float32,
    "in_degree": np.uint8,
    "out_degree": np.uint8,
    "spatial_pos": np.uint8,
    "attn_mask": np.bool_,
}


@dataclass
class Draw:
    """One chunk's members: the family batch (solver arguments on the solver grid) and domain data."""

    params: DCRBatch | WaveBatch | MVDCRBatch | INSBatch | SWEBatch | SteadyBatch
    edges: BoundaryForms | None = None  # the square's edges, or the disk's circle
    disk: Disk | None = None


def chunk_generator(seed: int, chunk: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0]))


def draw_chunk(cfg: Generate2DConfig, chunk: int) -> Draw:
    """Draw chunk ``chunk``'s members (CPU, float64), initial data already consistent with the domain."""
    gen = chunk_generator(cfg.seed, chunk)
    b, n, fam = cfg.chunk_size, cfg.solver_n, cfg.family
    if fam == "dcr-periodic":
        return Draw(sample_dcr(gen, b, n))
    if fam == "wave-periodic":
        return Draw(sample_wave(gen, b, n))
    if fam == "mvdcr-periodic":
        return Draw(sample_mv_dcr(gen, b, n, k=cfg.mv_components))
    if fam == "ins-periodic":
        return Draw(sample_ins(gen, b, n))
    if fam == "swe-periodic":
        return Draw(sample_swe(gen, b, n))
    if fam in STEADY:
        p = sample_steady(gen, b, n, fam.removeprefix("steady-"))
        return Draw(p, edges=p.edges, disk=p.disk)
    if fam == "wave-disk-mur":
        w = sample_wave(gen, b, n - 1)
        c = w.c2.sqrt()
        disk = Disk.from_mur(uniform(gen, (b,), *DISK_RADIUS), torch.zeros_like(c), c, torch.zeros_like(c))
        u0, v0 = (impose_disk(close_nodes(f), disk) for f in (w.u0, w.v0))
        return Draw(WaveBatch(u0, v0, w.c2, w.damping, close_nodes(w.source)), disk=disk)
    if fam == "wave-square-mur":
        w = sample_wave(gen, b, n - 1)
        return Draw(WaveBatch(close_nodes(w.u0), close_nodes(w.v0), w.c2, w.damping, close_nodes(w.source)))
    p = sample_dcr(gen, b, n - 1)
    p = DCRBatch(close_nodes(p.u0), p.a, p.c0, p.c1, p.c2, close_nodes(p.source))
    if fam == "dcr-square":
        edges = sample_conditions(gen, b, 4)
        p.u0 = impose_square_dirichlet(p.u0, edges.solver_bc())
        return Draw(p, edges=edges)
    circle = sample_conditions(gen, b, 1)
    disk = circle.solver_disk(uniform(gen, (b,), *DISK_RADIUS))
    p.u0 = impose_disk(p.u0, disk)
    return Draw(p, edges=circle, disk=disk)


def _square(u0, dirichlet, alpha, beta, a, c0, c1, c2, source, **kw):
    return solve_dcr_square(u0, SquareBC(dirichlet, alpha, beta), a, c0, c1, c2, source, **kw)


def _disk(u0, radius, value, alpha, beta, dirichlet, a, c0, c1, c2, source, **kw):
    return solve_dcr_disk(u0, Disk(radius, value, alpha, beta, dirichlet), a, c0, c1, c2, source, **kw)


def solve_draw(cfg: Generate2DConfig, d: Draw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve a chunk: u [B, num_t, R, n, n] (R stored unknowns), ok [B], dt [B] used (NaN: exact)."""
    p, fam, kw = d.params, cfg.family, {"num_t": cfg.num_t}
    if fam == "dcr-periodic":
        u, ok, dt = solve_dcr_refining(p.u0, p.a, p.c0, p.c1, p.c2, p.source, dts=cfg.dts, **kw)
    elif fam == "mvdcr-periodic":
        u, ok, dt = solve_mv_dcr_refining(p, dts=cfg.dts, **kw)
        return u, ok, dt
    elif fam == "ins-periodic":
        return solve_ins_refining(p, dts=cfg.dts, **kw)
    elif fam == "swe-periodic":
        return solve_swe_refining(p, dts=cfg.dts, **kw)
    elif fam in STEADY:
        u, ok = solve_steady(p)
        return u[:, None, None], ok, torch.full(ok.shape, math.nan, dtype=torch.float64)
    elif fam == "dcr-square":
        bc = d.edges.solver_bc()
        args = (p.u0, bc.dirichlet, bc.alpha, bc.beta, p.a, p.c0, p.c1, p.c2, p.source)
        u, ok, dt = refine_failed(_square, args, cfg.dts, **kw)
    elif fam == "dcr-disk":
        k = d.disk
        args = (p.u0, k.radius, k.value, k.alpha, k.beta, k.dirichlet, p.a, p.c0, p.c1, p.c2, p.source)
        u, ok, dt = refine_failed(_disk, args, cfg.dts, **kw)
    elif fam == "wave-periodic":
        u, ok = solve_wave(p.u0, p.v0, p.c2, p.damping, p.source, **kw)
        dt = torch.full(ok.shape, math.nan, dtype=torch.float64)
    elif fam == "wave-disk-mur":
        u, ok = solve_wave_disk(p.u0, p.v0, d.disk, p.c2, p.damping, p.source, dt=cfg.wave_dt, **kw)
        dt = torch.full(ok.shape, cfg.wave_dt, dtype=torch.float64)
    else:
        u, ok = solve_wave_square(p.u0, p.v0, mur_bc(p.c2), p.c2, p.damping, p.source, dt=cfg.wave_dt, **kw)
        dt = torch.full(ok.shape, cfg.wave_dt, dtype=torch.float64)
    return u[:, :, None], ok, dt


def member_pde(cfg: Generate2DConfig, d: Draw, b: int) -> PDE:
    """The symbolic PDE of member ``b`` of a draw."""
    p, g, fam = d.params, cfg.resolution, cfg.family
    if fam == "dcr-periodic":
        return dcr_periodic_pde(p, b, g)
    if fam == "wave-periodic":
        return wave_periodic_pde(p, b, g)
    if fam == "mvdcr-periodic":
        return mv_dcr_pde(p, b, g)
    if fam == "ins-periodic":
        return ins_pde(p, b, g)
    if fam == "swe-periodic":
        return swe_pde(p, b, g)
    if fam in STEADY:
        return steady_pde(p, b, g)
    if fam == "wave-square-mur":
        return wave_square_mur_pde(p, b, g)
    if fam == "wave-disk-mur":
        return wave_disk_mur_pde(p, d.disk, b, g)
    if fam == "dcr-square":
        return dcr_square_pde(p, d.edges, b, g)
    return dcr_disk_pde(p, d.disk, d.edges, b, g)


def row_shapes(cfg: Generate2DConfig) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Per-row shape and stored dtype of every per-row dataset of a file."""
    g, s = cfg.resolution, GRAPH_SIZES
    n = s.num_nodes
    shapes = {
        "node_type": (n,),
        "node_scalar": (s.max_n_scalar_nodes,),
        "function_values": (s.max_n_function_nodes, g * g, 3),
        "in_degree": (n,),
        "out_degree": (n,),
        "spatial_pos": (n, n),
        "attn_mask": (n, n),
    }
    out = {k: (shapes[k], GRAPH_DTYPES[k]) for k in GRAPH_KEYS}
    out |= {"u": ((cfg.frames, g, g), np.float32), "var": ((), np.int8)}
    out |= {"member": ((), np.int64), "dt": ((), np.float64)}
    if cfg.family in DISK:
        out["mask"] = ((g, g), np.uint8)
    return out


def solve_chunk(cfg: Generate2DConfig, chunk: int) -> dict[str, np.ndarray]:
    """Draw, solve and build the graphs of one chunk; stacked per-row arrays of the kept members,
    plus the counts ``num_candidates``, ``num_unbounded`` and ``num_too_large``."""
    d = draw_chunk(cfg, chunk)
    u, ok, dt = solve_draw(cfg, d)
    u = subsample(u, cfg.resolution)  # [B, T, R, G, G]
    rows: dict[str, list] = {k: [] for k in row_shapes(cfg)}
    too_large = 0
    mask = d.disk.mask(cfg.solver_n).numpy()[:, ::2, ::2] if d.disk is not None else None
    for b in np.flatnonzero(ok.numpy()):
        pde = member_pde(cfg, d, int(b))
        try:
            graphs = [build_graph(pde, cfg.num_mod, GRAPH_SIZES, target=k) for k in range(cfg.num_rows)]
        except ValueError:  # more nodes or functions than GRAPH_SIZES holds
            too_large += 1
            continue
        for k, graph in enumerate(graphs):
            for key in GRAPH_KEYS:
                rows[key].append(getattr(graph, key))
            rows["u"].append(u[b, :, k])
            rows["var"].append(k)
            rows["member"].append(chunk * cfg.chunk_size + b)
            rows["dt"].append(float(dt[b]))
            if mask is not None:
                rows["mask"].append(mask[b])
    out = {
        key: np.asarray(rows[key], dtype=dtype).reshape(-1, *shape)
        for key, (shape, dtype) in row_shapes(cfg).items()
    }
    out["num_candidates"] = np.array(cfg.chunk_size)
    out["num_unbounded"] = np.array(int((~ok).sum()))
    out["num_too_large"] = np.array(too_large)
    return out


COUNTS = ("num_candidates", "num_unbounded", "num_too_large")


def _config_json(cfg: Generate2DConfig) -> str:
    return json.dumps(cfg.model_dump(exclude={"num_samples"}), sort_keys=True)


def _create(f, cfg: Generate2DConfig) -> None:
    g, t = cfg.resolution, np.linspace(0.0, 1.0, cfg.num_t) if cfg.frames > 1 else np.zeros(1)
    xs = np.arange(g) / g if cfg.family in PERIODIC else np.arange(g) / (g - 1)
    f.create_dataset("t", data=t)
    f.create_dataset("x", data=xs)
    f.create_dataset("y", data=xs)
    for key, (shape, dtype) in row_shapes(cfg).items():
        big = key in ("u", "function_values", "spatial_pos", "attn_mask")
        f.create_dataset(
            key, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(1, *shape) if big else True
        )
    f.attrs.update({k: v for k, v in cfg.model_dump().items() if k != "num_samples"})
    f.attrs["config"] = _config_json(cfg)
    f.attrs["dim"] = 2
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["graph_sizes"] = json.dumps(asdict(GRAPH_SIZES))
    f.attrs["solver_n"] = cfg.solver_n
    # the steps tried in order (wave: the leapfrog step; NaN: the periodic wave is exact in time)
    leapfrog = (cfg.wave_dt,)
    steps = {"wave-square-mur": leapfrog, "wave-disk-mur": leapfrog, "wave-periodic": (math.nan,)}
    steps = steps.get(cfg.family, cfg.dts)
    steps = (math.nan,) if cfg.family in STEADY else steps  # a direct solve: no time step
    f.attrs["dts"] = np.asarray(steps, dtype=np.float64)
    f.attrs["next_chunk"] = 0
    f.attrs["chunk_taken"] = 0
    for k in COUNTS:
        f.attrs[k] = 0


def generate2d(cfg: Generate2DConfig, path: str | Path, progress: bool = True) -> int:
    """Generate (or continue generating) ``cfg.num_samples`` rows of ``cfg.family`` into ``path``.

    File layout (N rows, T = num_t, G = resolution, n_nodes = 128 for `GRAPH_SIZES`):

    - every key of `GRAPH_KEYS` per row: ``node_type`` uint8 [N, 128], ``node_scalar`` float32
      [N, 96], ``function_values`` float32 [N, 8, G*G, 3] (x, y, f on ``Domain.grid(G)``),
      ``in_degree``/``out_degree`` uint8 [N, 128], ``spatial_pos`` uint8 [N, 128, 128],
      ``attn_mask`` bool [N, 128, 128];
    - ``u`` float32 [N, T, G, G]: the row's target unknown, ``u[r, t, i, j]`` at (x[i], y[j]) (T = 1,
      t = 0, for a steady family);
    - ``var`` int8 [N]: the target's index among the PDE's unknowns (the graph's ``target``);
    - ``member`` int64 [N]: the candidate's index, chunk * chunk_size + position in the chunk;
    - ``dt`` float64 [N]: the solver step used (NaN: the exact periodic wave);
    - ``mask`` uint8 [N, G, G], disks only: 1 where the point is inside the domain (SDF < 0);
    - ``t`` [T] = linspace(0, 1), ``x`` = ``y`` [G]: i / G (periodic) or i / (G - 1);
    - attributes: the config's fields (not ``num_samples``), ``config`` (JSON of the same), ``dim`` = 2,
      ``format_version``, ``graph_sizes`` (JSON), ``solver_n``, ``dts`` (the steps tried in order),
      ``next_chunk``,
      ``chunk_taken``, and the counts over completed chunks ``num_candidates`` (members drawn),
      ``num_unbounded`` (dropped by the solver's |u| <= 10 / finite check at every dt tried),
      ``num_too_large`` (graph over `GRAPH_SIZES`).

    Returns the number of rows in the file.
    """
    import h5py
    from rich.progress import Progress

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "a") as f:
        if "u" in f:
            if f.attrs["config"] != _config_json(cfg):
                raise ValueError(
                    f"config {_config_json(cfg)} differs from the existing file's {f.attrs['config']}; "
                    "use a new output path or the same settings to resume"
                )
        else:
            _create(f, cfg)
        have = f["u"].shape[0]
        chunk = int(f.attrs["next_chunk"])
        with Progress(disable=not progress) as bar:
            task = bar.add_task(f"generating {path.name}", total=cfg.num_samples, completed=have)
            while have < cfg.num_samples:
                res = solve_chunk(cfg, chunk)
                skip = int(f.attrs["chunk_taken"])  # rows of this chunk stored by an earlier run
                take = min(len(res["u"]) - skip, cfg.num_samples - have)
                for key in row_shapes(cfg):
                    ds = f[key]
                    ds.resize(have + take, axis=0)
                    ds[have : have + take] = res[key][skip : skip + take]
                have += take
                if skip + take < len(res["u"]):  # stopped inside the chunk: a resume re-solves it
                    f.attrs["chunk_taken"] = skip + take
                else:
                    chunk += 1
                    f.attrs["chunk_taken"] = 0
                    for k in COUNTS:
                        f.attrs[k] = int(f.attrs[k]) + int(res[k])
                f.attrs["next_chunk"] = chunk
                f.flush()
                bar.update(task, completed=have)
    return have
