"""In-memory dataset over a generated HDF5 file: graph batches and (t, x) query points."""

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


class PDEDataset:
    """All samples of one generated file, held in memory.

    Parameters
    ----------
    path : str or Path
        HDF5 file written by `foundry.pde.data.generate.generate`.
    num_mod : int, optional
        Modulation nodes the model expects; must match the file's graphs.
    limit : int, optional
        Use only the first ``limit`` samples.
    """

    def __init__(self, path: str | Path, num_mod: int | None = None, limit: int | None = None) -> None:
        import h5py

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"dataset {path} does not exist; create it with `foundry pde generate`")
        try:
            with h5py.File(path, "r") as f:
                if num_mod is not None and int(f.attrs["num_mod"]) != num_mod:
                    raise ValueError(
                        f"{path} stores graphs with num_mod={int(f.attrs['num_mod'])} but the model "
                        f"needs {num_mod}; regenerate with --num-mod {num_mod}"
                    )
                n = f["u"].shape[0] if limit is None else min(limit, f["u"].shape[0])
                if n == 0:
                    raise ValueError(f"dataset {path} is empty")
                self.u = f["u"][:n].astype(np.float32)  # [N, T, X]
                self.t, self.x = f["t"][:].astype(np.float32), f["x"][:].astype(np.float32)
                self.graph = {k: f[k][:n] for k in GRAPH_KEYS}
                self.attrs = dict(f.attrs)
        except (OSError, KeyError) as e:  # not HDF5, or HDF5 without the generated layout
            name = re.findall(r"'(\w+)'", str(e))  # h5py: "... (object 't' doesn't exist)"
            what = f"lacks {name[-1] if name else e!r}" if isinstance(e, KeyError) else "is not an HDF5 file"
            raise ValueError(
                f"{path} {what}: not a dataset from `foundry pde generate` or `foundry pde benchmark-data`"
            ) from None
        self.periodic = str(self.attrs.get("family", "")).endswith("periodic")
        # graphs are cut to each batch's real nodes (exact, see `trim_padding`); False keeps the padding
        self.trim = True
        n_nodes, n_slots = self.graph["node_type"].shape[1], self.graph["node_scalar"].shape[1]
        self.num_branches = (n_nodes - n_slots) // self.graph["function_values"].shape[1]
        self.n_scalar, self.n_fn = padding_counts(
            self.graph["node_type"], self.graph["node_scalar"].shape[1], self.num_branches
        )

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
        nt, nx = self.u.shape[1:]
        shift = rng.integers(0, nx, size=len(idx)) if (x_shift and self.periodic) else None
        ti = rng.integers(0, nt, size=(len(idx), num_points))
        xi = rng.integers(0, nx, size=(len(idx), num_points))
        src_x = (xi - shift[:, None]) % nx if shift is not None else xi
        labels = self.u[idx[:, None], ti, src_x]
        coords = np.stack([self.t[ti], self.x[xi]], axis=-1)
        n_pts = self.graph["function_values"].shape[2]
        pts = None
        if function_points is not None and function_points < n_pts:
            pts = np.sort(rng.choice(n_pts, function_points, replace=False))
        return (
            graph_to_tensors(self._graphs(idx, shift, pts), device),
            torch.as_tensor(coords, device=device),
            torch.as_tensor(labels, device=device),
        )

    def full_grid(
        self, idx: np.ndarray, device: torch.device | str = "cpu"
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Graphs, every grid point [B, T*X, 2] and labels [B, T*X]."""
        tt, xx = np.meshgrid(self.t, self.x, indexing="ij")
        coords = np.broadcast_to(np.stack([tt, xx], -1).reshape(1, -1, 2), (len(idx), tt.size, 2))
        labels = self.u[idx].reshape(len(idx), -1)
        return (
            graph_to_tensors(self._graphs(idx, None), device),
            torch.as_tensor(coords.copy(), device=device),
            torch.as_tensor(labels, device=device),
        )
