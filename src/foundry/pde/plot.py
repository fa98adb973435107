"""Figures of predicted (and reference) solutions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np


def plot_prediction(arrays: dict[str, np.ndarray], title: str, path: str | Path) -> None:
    """Heat map of u(t, x), the reference beside it when present, and three time slices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_ref = "u_ref" in arrays
    fig, axes = plt.subplots(1, 3 if has_ref else 2, figsize=(13 if has_ref else 9, 3.6))
    t, x, u = arrays["t"], arrays["x"], arrays["u"]
    panels = [("PDEformer", t, x, u)] + (
        [("numerical solver", arrays["t_ref"], arrays["x_ref"], arrays["u_ref"])] if has_ref else []
    )
    vmin = min(p[3].min() for p in panels)
    vmax = max(p[3].max() for p in panels)
    for ax, (name, tt, xx, uu) in zip(axes, panels, strict=False):
        im = ax.pcolormesh(xx, tt, uu, shading="auto", vmin=vmin, vmax=vmax, cmap="RdBu_r")
        ax.set(xlabel="x", ylabel="t", title=name)
        fig.colorbar(im, ax=ax)
    ax = axes[-1]
    for frac, color in zip((0.0, 0.5, 1.0), ("C0", "C1", "C2"), strict=True):
        i = int(round(frac * (len(t) - 1)))
        ax.plot(x, u[i], color=color, label=f"t={t[i]:.2f} model")
        if has_ref:
            j = int(round(frac * (len(arrays["t_ref"]) - 1)))
            ax.plot(arrays["x_ref"], arrays["u_ref"][j], "--", color=color, label="solver")
    ax.set(xlabel="x", ylabel="u")
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training_log(log_path: str | Path, path: str | Path) -> None:
    """Training loss and held-out relative L2 against steps, from a ``log.jsonl``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from foundry.pde.training.train import read_log

    records = read_log(log_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    test = [(r["step"], r["test_rel_l2"]) for r in records if r.get("test_rel_l2") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss (normalised RMSE)")
    if test:
        ax.plot(*zip(*test, strict=True), "o-", label="held-out relative L2 (full grid)")
    ax.set(xlabel="step", ylabel="error", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_prediction2d(
    arrays: dict[str, np.ndarray], title: str, path: str | Path, animation: str | Path | None = None
) -> None:
    """Snapshots of a 2-D prediction u[t, x, y]: model, reference and |error| rows when a reference exists.

    Points outside the domain (``mask`` False) are blank. ``animation`` also writes a GIF of all frames.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, x, y = arrays["t"], arrays["x"], arrays["y"]
    mask = arrays.get("mask")

    def blank(u: np.ndarray) -> np.ndarray:
        return np.where(mask[None], u, np.nan) if mask is not None else u

    rows = [("PDEformer", blank(arrays["u"]))]
    if "u_ref" in arrays:
        rows += [
            ("solver", blank(arrays["u_ref"])),
            ("|error|", blank(np.abs(arrays["u"] - arrays["u_ref"]))),
        ]
    frames = sorted({int(round(f * (len(t) - 1))) for f in (0.0, 1 / 3, 2 / 3, 1.0)})
    lim = max(float(np.nanmax(np.abs(u))) for name, u in rows if name != "|error|") or 1.0
    # one frame (a steady problem): model, solver and error side by side
    shape = (1, len(rows)) if len(frames) == 1 else (len(rows), len(frames))
    width = 2.9 * shape[1] + 1
    fig, grid = plt.subplots(*shape, figsize=(width, 2.4 * shape[0] + 0.6), squeeze=False)
    axes = grid.T if len(frames) == 1 else grid  # axes[row of `rows`, frame]
    for r, (name, u) in enumerate(rows):
        err = name == "|error|"
        for c, i in enumerate(frames):
            ax = axes[r, c]
            im = ax.pcolormesh(
                x,
                y,
                u[i].T,
                shading="auto",
                cmap="magma" if err else "RdBu_r",
                vmin=0 if err else -lim,
                vmax=float(np.nanmax(u)) if err else lim,
            )
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, t={t[i]:.2f}", fontsize=8)
        fig.colorbar(im, ax=axes[r].tolist(), shrink=0.8)
    fig.suptitle("\n".join(textwrap.wrap(title, int(width * 13))), fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    if animation is not None:
        from matplotlib.animation import FuncAnimation, PillowWriter

        fig, axes = plt.subplots(1, len(rows), figsize=(3 * len(rows), 3), squeeze=False)
        ims = []
        for ax, (name, u) in zip(axes[0], rows, strict=True):
            err = name == "|error|"
            ims.append(
                ax.imshow(
                    u[0].T,
                    origin="lower",
                    extent=(x[0], x[-1], y[0], y[-1]),
                    cmap="magma" if err else "RdBu_r",
                    vmin=0 if err else -lim,
                    vmax=float(np.nanmax(u)) if err else lim,
                )
            )
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        label = fig.suptitle(f"t = {t[0]:.2f}", fontsize=9)

        def frame(i: int) -> list:
            for im, (_, u) in zip(ims, rows, strict=True):
                im.set_data(u[i].T)
            label.set_text(f"t = {t[i]:.2f}")
            return ims

        FuncAnimation(fig, frame, frames=len(t), interval=80).save(animation, writer=PillowWriter(fps=12))
        plt.close(fig)
