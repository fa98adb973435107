"""RL tasks with verifiable rewards. Add one by subclassing `Task` and registering it here."""

from foundry.rl.tasks.base import Prompt, Task, char_accuracy
from foundry.rl.tasks.reverse import Reverse
from foundry.rl.tasks.run_length import RunLengthDecoding

TASKS: dict[str, type[Task]] = {"rle": RunLengthDecoding, "reverse": Reverse}


def make_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"task: unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]()


__all__ = ["TASKS", "Prompt", "Reverse", "RunLengthDecoding", "Task", "char_accuracy", "make_task"]
