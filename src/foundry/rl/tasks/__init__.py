"""RL tasks with verifiable rewards. Add one by subclassing `Task` and registering it here."""

from collections.abc import Callable
from functools import partial

from foundry.rl.tasks.base import Prompt, Task, char_accuracy
from foundry.rl.tasks.reverse import Reverse
from foundry.rl.tasks.run_length import RunLengthDecoding

TASKS: dict[str, Callable[[], Task]] = {
    "rle": RunLengthDecoding,
    # a longer tail: counts to 150, answers to 191 characters (the benchmark's task: generation-heavy)
    "rle-long": partial(RunLengthDecoding, max_count=150, sigma=1.3, max_new_tokens=192, name="rle-long"),
    "reverse": Reverse,
}


def make_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"task: unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]()


__all__ = ["TASKS", "Prompt", "Reverse", "RunLengthDecoding", "Task", "char_accuracy", "make_task"]
