"""Generate the periodic pretraining family into HDF5, in parallel, deterministic and resumable.

Work is cut into chunks of `chunk_size` candidate PDEs; chunk i draws from
``np.random.default_rng([seed, i])`` and is solved as one batch, so the output depends only on the
seed and the chunk size, not on the number of workers. Accepted samples (finite, |u| <= 10, no
checkerboard) are appended in chunk order; the file records the next chunk (and how much of it is
already stored), so an interrupted or extended run gives the same file as one uninterrupted run.
Graph arrays (`foundry.pde.graph.dag.PDEGraph`) are stored beside the solutions so training never
rebuilds them.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from foundry.pde.data.fd_solver import nonperiodic_grid, solve_nonperiodic
from foundry.pde.data.sinus import BC_KINDS, params_to_pde, sample_params
from foundry.pde.data.spectral_solver import checkerboard, solve_periodic
from foundry.pde.graph.dag import GRAPH_KEYS, GraphSizes, build_graph

FORMAT_VERSION = 1
PARAM_KEYS = ("c0", "c1", "source", "source_kind", "kappa", "kappa_is_field", "flux_form")


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate.

    Attributes
    ----------
    num_samples : accepted samples wanted
    seed : base seed; chunk i uses rng([seed, i])
    num_x, num_t : grid sizes (x periodic on [-1, 1), t uniform on [0, 1])
    dt : solver time step
    num_mod : modulation nodes per unknown in the stored graphs (= INR hidden layers of the model)
    chunk_size : candidates solved together in one batch
    boundary : "periodic" (Fourier solver) or "robin" (D/N/Robin at each end, finite differences)
    coef_range : coefficients, scalar sources and boundary values are drawn from U[-r, r]
    advection_share : probability of a pure transport member u_t + (c u - kappa u_x)_x = 0
        (kappa = 0 or small; periodic only), see `foundry.pde.data.sinus.sample_advection`
    """

    num_samples: int = 1000
    seed: int = 0
    num_x: int = 128
    num_t: int = 101
    dt: float = 2e-4
    num_mod: int = 3
    chunk_size: int = 64
    boundary: str = "periodic"
    coef_range: float = 3.0
    advection_share: float = 0.0

    def __post_init__(self) -> None:
        if self.boundary not in ("periodic", "robin"):
            raise ValueError(f"boundary must be 'periodic' or 'robin', got {self.boundary!r}")
        for name in ("num_samples", "num_x", "num_t", "num_mod", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_x % 2 or self.num_x < 16:
            raise ValueError(f"num_x must be even and >= 16, got {self.num_x}")
        if self.dt <= 0:
            raise ValueError(f"dt must be positive, got {self.dt}")
        if self.coef_range <= 0:
            raise ValueError(f"coef_range must be positive, got {self.coef_range}")
        if not 0 <= self.advection_share <= 1:
            raise ValueError(f"advection_share must be in [0, 1], got {self.advection_share}")


def grid(cfg: GenerateConfig) -> tuple[np.ndarray, np.ndarray]:
    """(t, x) coordinates of the stored solutions."""
    if cfg.boundary == "periodic":
        return np.linspace(0.0, 1.0, cfg.num_t), np.linspace(-1.0, 1.0, cfg.num_x, endpoint=False)
    return np.linspace(0.0, 1.0, cfg.num_t), nonperiodic_grid(cfg.num_x)


def solve_chunk(cfg: GenerateConfig, chunk: int, device: str | None = None) -> dict[str, np.ndarray]:
    """Draw, solve and filter one chunk; returns stacked arrays of the accepted samples.

    ``device`` (e.g. "cuda", or "cpu" for tests) solves a periodic chunk with the torch solver there
    (`foundry.pde.data.torch_solver`, equal to the numpy one to rounding); None uses numpy.
    """
    rng = np.random.default_rng([cfg.seed, chunk])
    _, x = grid(cfg)
    periodic = cfg.boundary == "periodic"
    params = [
        sample_params(rng, x, periodic, cfg.coef_range, cfg.advection_share) for _ in range(cfg.chunk_size)
    ]

    def stack(name: str) -> np.ndarray:
        return np.stack([np.asarray(getattr(p, name)) for p in params])

    fields = (stack("u0"), stack("c0"), stack("c1"), stack("source"), stack("kappa"))
    if periodic and device is not None:
        from foundry.pde.data.torch_solver import solve_periodic_torch

        u, ok = solve_periodic_torch(*fields, num_t=cfg.num_t, dt=cfg.dt, device=device)
    elif periodic:
        u, ok = solve_periodic(*fields, num_t=cfg.num_t, dt=cfg.dt)
    else:
        u, ok = solve_nonperiodic(*fields, stack("bc_left"), stack("bc_right"), num_t=cfg.num_t, dt=cfg.dt)
    ok &= ~checkerboard(u, periodic=periodic)
    keep = np.flatnonzero(ok)
    out: dict[str, np.ndarray] = {"u": u[keep].astype(np.float32), "u0": stack("u0")[keep]}
    for key in PARAM_KEYS if periodic else (*PARAM_KEYS, "bc_left", "bc_right"):
        out[key] = stack(key)[keep]
    if not periodic:
        out["bc_kinds"] = np.array([[BC_KINDS.index(k) for k in p.bc_kinds] for p in params])[keep]
    graphs = [build_graph(params_to_pde(params[i], x), cfg.num_mod) for i in keep]
    for key in GRAPH_KEYS:
        shape = np.shape(getattr(build_graph(params_to_pde(params[0], x), cfg.num_mod), key))
        out[key] = np.stack([getattr(g, key) for g in graphs]) if graphs else np.zeros((0, *shape))
    out["num_candidates"] = np.array(cfg.chunk_size)
    return out


def _create(f, cfg: GenerateConfig, first: dict[str, np.ndarray], family: str = "sinus0") -> None:
    t, x = grid(cfg)
    f.create_dataset("t", data=t)
    f.create_dataset("x", data=x)
    for key, arr in first.items():
        if key == "num_candidates":
            continue
        dtype = np.uint8 if key in ("in_degree", "out_degree", "spatial_pos", "node_type") else arr.dtype
        f.create_dataset(
            key,
            shape=(0, *arr.shape[1:]),
            maxshape=(None, *arr.shape[1:]),
            dtype=dtype,
            chunks=(16, *arr.shape[1:]) if key == "u" else True,
            compression=None,
        )
    for k, v in asdict(cfg).items():
        f.attrs[k] = v
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["family"] = f"{family}-{cfg.boundary}"
    f.attrs["next_chunk"] = 0
    f.attrs["num_candidates"] = 0
    f.attrs["graph_sizes"] = str(asdict(GraphSizes()))


# settings that files written before they existed were generated with
LEGACY_DEFAULTS = {"coef_range": 3.0, "boundary": "periodic", "advection_share": 0.0}


def _check_same(f, cfg: GenerateConfig) -> None:
    for k, v in asdict(cfg).items():
        have = f.attrs.get(k, LEGACY_DEFAULTS.get(k))
        if k != "num_samples" and have != v:
            raise ValueError(
                f"{k}={v} differs from the existing file's {k}={have}; "
                "use a new output path or the same settings to resume"
            )


def generate(
    cfg: GenerateConfig,
    path: str | Path,
    num_workers: int = 1,
    progress: bool = True,
    family: str = "sinus0",
    solve: Callable[[GenerateConfig, int], dict[str, np.ndarray]] = solve_chunk,
    device: str | None = None,
) -> int:
    """Generate (or continue generating) `cfg.num_samples` samples into `path`.

    ``solve(cfg, chunk)`` draws and solves one chunk of another family (a picklable module-level
    function returning `solve_chunk`'s keys plus that family's parameters), stored under the
    attribute ``family`` = ``f"{family}-{cfg.boundary}"``. ``device`` solves sinus0 chunks with the
    torch solver there (a GPU). Returns the number of samples in the file.
    """
    import h5py
    from rich.progress import Progress

    if device is not None:  # the torch solver on a device; one process drives it
        solve, num_workers = partial(solve_chunk, device=device), 1
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "a") as f:
        if "u" in f:
            _check_same(f, cfg)
            if f.attrs["family"] != f"{family}-{cfg.boundary}":
                raise ValueError(f"family {family!r} differs from the existing file's {f.attrs['family']!r}")
        have = f["u"].shape[0] if "u" in f else 0
        chunk = int(f.attrs.get("next_chunk", 0))
        if have >= cfg.num_samples:
            return have
        ctx = mp.get_context("spawn" if num_workers > 1 else "fork")
        pool = ctx.Pool(num_workers) if num_workers > 1 else None
        try:
            with Progress(disable=not progress) as bar:
                task = bar.add_task(f"generating {path.name}", total=cfg.num_samples, completed=have)
                while have < cfg.num_samples:
                    # over-provision by the typical acceptance (~60%) and run the batch in parallel
                    need = max(1, int(np.ceil((cfg.num_samples - have) / (0.55 * cfg.chunk_size))))
                    ids = list(range(chunk, chunk + min(need, 4 * num_workers)))
                    args = [(cfg, i) for i in ids]
                    results = pool.starmap(solve, args) if pool else [solve(*a) for a in args]
                    for res in results:
                        if have >= cfg.num_samples:
                            break
                        if "u" not in f:
                            _create(f, cfg, res, family)
                        skip = int(f.attrs.get("chunk_taken", 0))  # part of this chunk stored last time
                        take = min(len(res["u"]) - skip, cfg.num_samples - have)
                        for key, arr in res.items():
                            if key == "num_candidates":
                                continue
                            ds = f[key]
                            ds.resize(have + take, axis=0)
                            ds[have : have + take] = arr[skip : skip + take]
                        have += take
                        if skip + take < len(res["u"]):  # stopped inside the chunk: resume re-solves it
                            f.attrs["chunk_taken"] = skip + take
                        else:
                            chunk += 1
                            f.attrs["chunk_taken"] = 0
                            f.attrs["num_candidates"] = int(f.attrs["num_candidates"]) + int(
                                res["num_candidates"]
                            )
                        f.attrs["next_chunk"] = chunk
                        f.flush()
                        bar.update(task, completed=have)
        finally:
            if pool:
                pool.close()
                pool.join()
    return have
