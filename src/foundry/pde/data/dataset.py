"""In-memory dataset over generated HDF5 files: graph batches and (t, x) or (t, x, y) query points.

One code path for both dimensions: a file holds ``u`` [N, T, *S] with S = (X,) in 1-D and (X, Y)
in 2-D, the coordinate arrays ``t``, ``x`` (and ``y``), and for domains smaller than their box
(a disk) a ``mask`` [N, *S] of the points inside; query points are drawn among those.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from foundry.pde.data.generate import GRAPH_KEYS


def graph_to_tensors(
    arrays: dict[str, np.ndarray], device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Batched graph arrays (numpy, leading batch axis) -> the tensors `PDEformer.encode` reads."""
    out = {}
    for key in GRAPH_KEYS:
        a = arrays[key]
        if key in ("node_type", "in_degree", "out_degree", "spatial_pos"):
            out[key] = torch.as_tensor(a.astype(np.int64), device=device)
        elif key == "attn_mask":
            out[key] = torch.as_tensor(a.astype(bool), device=device)
        else:
            out[key] = torch.as_tensor(a.astype(np.float32), device=device)
    return out


def padding_counts(
    node_type: np.ndarray, num_scalar_slots: int, num_branches: int
) -> tuple[np.ndarray, np.ndarray]:
    """Real scalar-slot nodes and real functions per graph: node_type [N, n] -> two [N] int arrays."""
    n_scalar = (node_type[:, :num_scalar_slots] > 0).sum(1)
    n_fn = (node_type[:, num_scalar_slots::num_branches] > 0).sum(1)
    return n_scalar, n_fn


def trim_padding(
    arrays: dict[str, np.ndarray],
    num_branches: int,
    num_scalar: int | None = None,
    num_functions: int | None = None,
) -> dict[str, np.ndarray]:
    """Cut batched graph arrays down to the batch's real nodes (the largest graph's counts).

    Real scalar-slot nodes come first and padding after them, and the same holds for the function
    slots, so keeping the first ``num_scalar`` scalar slots and the first ``num_functions`` functions
    drops only padding. Exact: padded nodes are masked out of every real node's attention, so the
    modulation embeddings do not change (a test checks it); the graph Transformer then attends over
    ~30 instead of 64 nodes. Counts default to the batch maximum.
    """
    s = arrays["node_scalar"].shape[1]
    if num_scalar is None or num_functions is None:
        ns, nf = padding_counts(arrays["node_type"], s, num_branches)
        num_scalar, num_functions = int(ns.max()), int(nf.max())
    keep = np.concatenate([np.arange(num_scalar), s + np.arange(num_functions * num_branches)])
    out = dict(arrays)
    out["node_scalar"] = arrays["node_scalar"][:, :num_scalar]
    out["function_values"] = arrays["function_values"][:, :num_functions]
    for key in ("node_type", "in_degree", "out_degree"):
        out[key] = arrays[key][:, keep]
    for key in ("spatial_pos", "attn_mask"):
        out[key] = arrays[key][:, keep][:, :, keep]
    return out


def _num_rows(path: Path) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return int(f["u"].shape[0])
    except (OSError, KeyError):
        return 0  # `_read` names what is wrong


def _read(path: Path, num_mod: int | None, rows: slice = slice(None)) -> dict:
    """One generated file's arrays (u, t, x[, y][, mask], the graph keys; only ``rows``) and attrs."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            file_mod = int(f.attrs["num_mod"])  # every generated file has it (KeyError: not one)
            if num_mod is not None and file_mod != num_mod:
                raise ValueError(
                    f"{path} stores graphs with num_mod={file_mod} but the model "
                    f"needs {num_mod}; regenerate with --num-mod {num_mod}"
                )
            if f["u"].shape[0] == 0:
                raise ValueError(f"dataset {path} is empty")
            out = {k: f[k][rows] for k in ("u", *GRAPH_KEYS)}  # h5py reads only those rows
            out["t"], out["x"] = f["t"][:].astype(np.float32), f["x"][:].astype(np.float32)
            if "y" in f:
                out["y"] = f["y"][:].astype(np.float32)
            if "mask" in f:
                out["mask"] = f["mask"][rows]
            out["attrs"] = dict(f.attrs)
            return out
    except (OSError, KeyError) as e:  # not HDF5, or HDF5 without the generated layout
        name = re.findall(r"'(\w+)'", str(e))  # h5py: "... (object 't' doesn't exist)"
        what = f"lacks {name[-1] if name else e!r}" if isinstance(e, KeyError) else "is not an HDF5 file"
        raise ValueError(
            f"{path} {what}: not a dataset from `foundry pde generate` or `foundry pde benchmark-data`"
        ) from None


class PDEDataset:
    """All samples of one generated file (or of every ``*.h5`` file in a folder), held in memory.

    Parameters
    ----------
    path : str or Path
        HDF5 file written by `foundry.pde.data.generate.generate` (1-D) or
        `foundry.pde.data.generate2d.generate2d` (2-D), or a folder of such files of one
        dimension and graph size, read in name order and concatenated.
    num_mod : int, optional
        Modulation nodes the model expects; must match the file's graphs.
    limit : int, optional
        Use only the first ``limit`` samples.
    shard : (rank, world), optional
        Read only the rank-th of ``world`` contiguous slices of those samples (DDP: each process
        holds its own part, not the whole file).
    """

    def __init__(
        self,
        path: str | Path,
        num_mod: int | None = None,
        limit: int | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"dataset {path} does not exist; create it with `foundry pde generate`")
        files = sorted(path.glob("*.h5")) if path.is_dir() else [path]
        if not files:
            raise ValueError(f"dataset folder {path} holds no *.h5 file")
        sizes = [_num_rows(f) for f in files]
        n_all = sum(sizes)
        n = n_all if limit is None else min(limit, n_all)
        rank, world = shard
        lo, hi = rank * n // world, (rank + 1) * n // world
        parts, start = [], 0
        for f, size in zip(files, sizes, strict=True):  # each file's rows inside [lo, hi)
            a, b = max(lo - start, 0), min(hi - start, size)
            if b > a or (not parts and f is files[-1]) or size == 0:
                parts.append(_read(f, num_mod, slice(a, max(a, b))))
            start += size
        if hi <= lo:
            raise ValueError(f"dataset {path}: {n} samples cannot be split into {world} shards")
        first = parts[0]
        for f, part in zip(files[1:], parts[1:], strict=True):
            for key in ("u", *GRAPH_KEYS):
                frames = 2 if key == "u" else 1  # the frame count may differ (steady files: one)
                if part[key].shape[frames:] != first[key].shape[frames:]:
                    raise ValueError(
                        f"{f}: {key} has shape {part[key].shape[1:]} per sample, {files[0]} has "
                        f"{first[key].shape[1:]}; a folder must hold files of one dimension and graph size"
                    )
        # time grids: one shared grid, or t = [0] for time-independent (steady) files, whose solution
        # is repeated over the frames and drawn at t = 0 only (`num_frames`)
        t_full = max((p["t"] for p in parts), key=len)
        for f, part in zip(files, parts, strict=True):
            steady = len(part["t"]) == 1 and part["t"][0] == 0
            if not (steady or np.array_equal(part["t"], t_full)):
                raise ValueError(f"{f}: its time grid differs from the folder's other files")

        def cat(key: str) -> np.ndarray:
            return np.concatenate([p[key] for p in parts])

        for part in parts:
            if len(part["t"]) < len(t_full):
                part["frames"] = np.ones(len(part["u"]), dtype=np.int64)
                part["u"] = np.repeat(part["u"], len(t_full), axis=1)
            else:
                part["frames"] = np.full(len(part["u"]), len(t_full), dtype=np.int64)
        self.u = cat("u").astype(np.float32)  # [N, T, *S]
        frames = cat("frames")
        # frames of each sample drawn and scored (None: all); a steady sample has one, t = 0
        self.num_frames = frames if (frames < len(t_full)).any() else None
        self.graph = {k: cat(k) for k in GRAPH_KEYS}
        self.t, self.x = t_full, first["x"]
        self.y = first.get("y")
        self.dim = self.u.ndim - 2
        self.mask = None
        if any("mask" in p for p in parts):  # box samples of a mixed folder count as all inside
            full = np.ones(self.u.shape[2:], dtype=bool)
            self.mask = np.concatenate(
                [
                    p["mask"].astype(bool)
                    if "mask" in p
                    else np.broadcast_to(full, (len(p["u"]), *full.shape))
                    for p in parts
                ]
            )
        self.attrs = first["attrs"]
        self.periodic = str(self.attrs.get("family", "")).endswith("periodic") and self.dim == 1
        # graphs are cut to each batch's real nodes (exact, see `trim_padding`); False keeps the padding
        self.trim = True
        n_nodes, n_slots = self.graph["node_type"].shape[1], self.graph["node_scalar"].shape[1]
        self.num_branches = (n_nodes - n_slots) // self.graph["function_values"].shape[1]
        self.n_scalar, self.n_fn = padding_counts(
            self.graph["node_type"], self.graph["node_scalar"].shape[1], self.num_branches
        )
        # query points of masked samples: each sample's inside points (flat indices into S), padded
        # by repetition to one width so that a batch draws them with one gather
        self.inside, self.num_inside = None, None
        if self.mask is not None:
            flat = self.mask.reshape(len(self.mask), -1)
            self.num_inside = flat.sum(1)
            if (self.num_inside == 0).any():
                raise ValueError(f"dataset {path}: a sample has no point inside its domain")
            width = int(self.num_inside.max())
            self.inside = np.zeros((len(flat), width), dtype=np.int64)
            for i, row in enumerate(flat):
                pts = np.flatnonzero(row)
                self.inside[i] = np.resize(pts, width)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.u.shape[2:]

    def coordinate_axes(self) -> list[np.ndarray]:
        """The coordinate arrays of the grid: [t, x] or [t, x, y]."""
        return [self.t, self.x] + ([self.y] if self.dim == 2 else [])

    def __len__(self) -> int:
        return self.u.shape[0]

    def _graphs(
        self, idx: np.ndarray, shift: np.ndarray | None, function_points: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        g = {k: v[idx] for k, v in self.graph.items()}
        if self.trim:
            g = trim_padding(g, self.num_branches, int(self.n_scalar[idx].max()), int(self.n_fn[idx].max()))
        if shift is not None:  # roll the function values with the solution; x stays the grid
            fv = g["function_values"].copy()
            for b, s in enumerate(shift):
                fv[b, :, :, 1] = np.roll(fv[b, :, :, 1], s, axis=-1)
            g["function_values"] = fv
        if function_points is not None:  # a random subset of the points, the same for the whole batch
            g["function_values"] = g["function_values"][:, :, function_points]
        return g

    def sample(
        self,
        idx: np.ndarray,
        num_points: int,
        rng: np.random.Generator,
        x_shift: bool = False,
        device: torch.device | str = "cpu",
        function_points: int | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Graphs, ``num_points`` random grid points (t, x) [B, Q, 2] and labels u [B, Q].

        With ``x_shift`` (periodic data only), each sample is circularly shifted in x by a random
        number of grid cells, functions and solution together (the reference's augmentation).
        ``function_points`` gives the function encoder that many random points of each function
        (all of them when None): a cheaper, noisier step, not an exact one.
        """
        if self.dim == 1:
            nt, nx = self.u.shape[1:]
            shift = rng.integers(0, nx, size=len(idx)) if (x_shift and self.periodic) else None
            ti = rng.integers(0, nt, size=(len(idx), num_points))
            xi = rng.integers(0, nx, size=(len(idx), num_points))
            src_x = (xi - shift[:, None]) % nx if shift is not None else xi
            labels = self.u[idx[:, None], ti, src_x]
            coords = np.stack([self.t[ti], self.x[xi]], axis=-1)
        else:
            shift = None
            ti = self.frame_index(idx, rng.random((len(idx), num_points)))
            si = self.spatial_index(idx, rng.random((len(idx), num_points)))
            labels = self.u.reshape(len(self.u), len(self.t), -1)[idx[:, None], ti, si]
            coords = np.stack([self.t[ti], *self.spatial_coordinates(si)], axis=-1)
        n_pts = self.graph["function_values"].shape[2]
        pts = None
        if function_points is not None and function_points < n_pts:
            pts = np.sort(rng.choice(n_pts, function_points, replace=False))
        return (
            graph_to_tensors(self._graphs(idx, shift, pts), device),
            torch.as_tensor(coords, device=device),
            torch.as_tensor(labels, device=device),
        )

    def frame_index(self, idx: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Frame indices [B, Q] from uniforms ``r`` in [0, 1): t = 0 only for a steady sample."""
        frames = len(self.t) if self.num_frames is None else self.num_frames[idx, None]
        return np.minimum((r * frames).astype(np.int64), frames - 1)

    def spatial_index(self, idx: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Flat spatial indices [B, Q] from uniforms ``r`` in [0, 1): inside each sample's domain."""
        if self.inside is None:
            return np.minimum(
                (r * int(np.prod(self.spatial_shape))).astype(np.int64), np.prod(self.spatial_shape) - 1
            )
        k = np.minimum((r * self.num_inside[idx, None]).astype(np.int64), self.num_inside[idx, None] - 1)
        return self.inside[idx[:, None], k]

    def spatial_coordinates(self, flat: np.ndarray) -> list[np.ndarray]:
        """(x, y) of flat 2-D grid indices (row-major: x is the first axis)."""
        ix, iy = np.divmod(flat, len(self.y))
        return [self.x[ix], self.y[iy]]

    def full_grid_mask(self, idx: np.ndarray) -> np.ndarray | None:
        """[B, T * prod(S)] bool: the `full_grid` points inside each domain and, for a steady sample,
        at t = 0 (None: all points count)."""
        if self.mask is None and self.num_frames is None:
            return None
        size = int(np.prod(self.spatial_shape))
        m = (
            np.ones((len(idx), 1, size), dtype=bool)
            if self.mask is None
            else self.mask[idx].reshape(len(idx), 1, -1)
        )
        m = np.broadcast_to(m, (len(idx), len(self.t), size))
        if self.num_frames is not None:
            m = m & (np.arange(len(self.t))[None, :, None] < self.num_frames[idx, None, None])
        return np.array(m.reshape(len(idx), -1))  # writable: torch wraps it without a copy

    def full_grid(
        self, idx: np.ndarray, device: torch.device | str = "cpu"
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Graphs, every grid point [B, T*prod(S), 1 + dim], labels [B, T*prod(S)] (see `full_grid_mask`)."""
        mesh = np.meshgrid(*self.coordinate_axes(), indexing="ij")
        grid = np.stack(mesh, -1).reshape(1, -1, len(mesh))
        coords = np.broadcast_to(grid, (len(idx), grid.shape[1], grid.shape[2]))
        labels = self.u[idx].reshape(len(idx), -1)
        return (
            graph_to_tensors(self._graphs(idx, None), device),
            torch.as_tensor(coords.copy(), device=device),
            torch.as_tensor(labels, device=device),
        )


class DeviceSampler:
    """Training batches drawn on the device from a `PDEDataset` copied there once.

    The host keeps only the per-sample node counts (to trim each batch's padding without asking
    the device) and draws the sample indices; query points, x-shifts, labels and function-point
    subsets are drawn and gathered on the device with its own generator, so a step costs one small
    host-to-device copy (the indices) and no device-to-host synchronisation. Same distribution as
    `PDEDataset.sample`, not the same random numbers.
    """

    def __init__(self, data: PDEDataset, device: torch.device | str, seed: int = 0) -> None:
        self.data, self.device = data, torch.device(device)
        self.u = torch.as_tensor(data.u, device=self.device)  # [N, T, X]
        self.t = torch.as_tensor(data.t, device=self.device)
        self.x = torch.as_tensor(data.x, device=self.device)
        self.y = torch.as_tensor(data.y, device=self.device) if data.dim == 2 else None
        self.inside = torch.as_tensor(data.inside, device=self.device) if data.inside is not None else None
        self.num_inside = (
            torch.as_tensor(data.num_inside, device=self.device) if data.num_inside is not None else None
        )
        self.num_frames = (
            torch.as_tensor(data.num_frames, device=self.device) if data.num_frames is not None else None
        )
        # compact dtypes on the device (uint8 types and distances, bool mask); widened per batch
        self.graph = {k: torch.as_tensor(v, device=self.device) for k, v in data.graph.items()}
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed)
        self._keep: dict[tuple[int, int], torch.Tensor] = {}

    def _keep_index(self, n_scalar: int, n_fn: int) -> torch.Tensor:
        key = (n_scalar, n_fn)
        if key not in self._keep:
            s, nb = self.data.graph["node_scalar"].shape[1], self.data.num_branches
            keep = np.concatenate([np.arange(n_scalar), s + np.arange(n_fn * nb)])
            self._keep[key] = torch.as_tensor(keep, device=self.device)
        return self._keep[key]

    def sample(
        self, idx: np.ndarray, num_points: int, x_shift: bool = False, function_points: int | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Like `PDEDataset.sample`; ``idx`` (host indices) fixes the batch's trimmed size."""
        d, dev, gen = self.data, self.device, self.gen
        n_scalar, n_fn = int(d.n_scalar[idx].max()), int(d.n_fn[idx].max())
        keep = self._keep_index(n_scalar, n_fn) if d.trim else None
        b = len(idx)
        i = torch.as_tensor(idx, device=dev)
        if d.dim == 1:
            nt, nx = self.u.shape[1:]
            ti = torch.randint(0, nt, (b, num_points), generator=gen, device=dev)
            xi = torch.randint(0, nx, (b, num_points), generator=gen, device=dev)
            shift = (
                torch.randint(0, nx, (b,), generator=gen, device=dev) if (x_shift and d.periodic) else None
            )
            src_x = (xi - shift[:, None]) % nx if shift is not None else xi
            labels = self.u[i[:, None], ti, src_x]
            coords = torch.stack([self.t[ti], self.x[xi]], dim=-1)
        else:  # as `PDEDataset.spatial_index`: uniform over each sample's inside points
            shift, nt, ny = None, self.u.shape[1], self.u.shape[3]
            if self.num_frames is None:
                ti = torch.randint(0, nt, (b, num_points), generator=gen, device=dev)
            else:  # as `PDEDataset.frame_index`: t = 0 only for a steady sample
                frames = self.num_frames[i][:, None]
                rt = torch.rand((b, num_points), generator=gen, device=dev)
                ti = torch.minimum((rt * frames).long(), frames - 1)
            r = torch.rand((b, num_points), generator=gen, device=dev)
            if self.inside is None:
                size = self.u.shape[2] * ny
                si = torch.clamp((r * size).long(), max=size - 1)
            else:
                count = self.num_inside[i][:, None]
                si = self.inside[i[:, None], torch.minimum((r * count).long(), count - 1)]
            labels = self.u.flatten(2)[i[:, None], ti, si]
            coords = torch.stack([self.t[ti], self.x[si // ny], self.y[si % ny]], dim=-1)
        g = {}
        for key, v in self.graph.items():
            v = v[i]
            if keep is not None:
                if key in ("node_type", "in_degree", "out_degree"):
                    v = v[:, keep]
                elif key in ("spatial_pos", "attn_mask"):
                    v = v[:, keep][:, :, keep]
                elif key == "node_scalar":
                    v = v[:, :n_scalar]
                elif key == "function_values":
                    v = v[:, :n_fn]
            g[key] = v
        fv = g["function_values"]
        n_pts = fv.shape[2]
        if shift is not None:  # roll f(x) with the solution: out[p] = in[p - s], as np.roll
            p = (torch.arange(n_pts, device=dev)[None, :] - shift[:, None]) % n_pts  # [B, P]
            rolled = torch.gather(fv[..., 1], 2, p[:, None, :].expand(-1, fv.shape[1], -1))
            fv = torch.stack([fv[..., 0], rolled], dim=-1)
        if function_points is not None and function_points < n_pts:
            pts = torch.randperm(n_pts, generator=gen, device=dev)[:function_points].sort().values
            fv = fv[:, :, pts]
        g["function_values"] = fv.float()
        g["node_scalar"] = g["node_scalar"].float()
        for key in ("node_type", "in_degree", "out_degree", "spatial_pos"):
            g[key] = g[key].long()
        g["attn_mask"] = g["attn_mask"].bool()
        return g, coords, labels
