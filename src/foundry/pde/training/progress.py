"""A rich progress bar for `train`: steps, smoothed loss, last held-out error, elapsed time and ETA."""

from __future__ import annotations

from collections import deque

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """The ``on_step`` observer of `train`, drawn on stderr; use as a context manager.

    Parameters
    ----------
    max_steps : int
        The bar's total (a resumed run starts part-way).
    window : int
        The loss shown is the mean over this many recent steps.
    disable : bool
        Draw nothing (e.g. on DDP ranks other than 0).
    """

    def __init__(self, max_steps: int, window: int = 50, disable: bool = False) -> None:
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  held-out {task.fields[held_out]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=disable,
        )
        self.task = self.progress.add_task("train", total=max_steps, loss="-", held_out="-", start=False)
        self.losses: deque[float] = deque(maxlen=window)
        self.started = False

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, step: int, metrics: dict) -> None:
        if not self.started:  # the first step seen: a resumed run's ETA counts only this run's speed
            self.progress.reset(self.task, completed=step - 1)
            self.started = True
        fields = {}
        if "loss" in metrics:  # on a GPU the loss is read back only every log_every steps
            self.losses.append(metrics["loss"])
            fields["loss"] = f"{sum(self.losses) / len(self.losses):.4f}"
        if metrics.get("test_rel_l2") is not None:
            fields["held_out"] = f"{metrics['test_rel_l2']:.4f}"
        self.progress.update(self.task, completed=step, **fields)
