"""Every task by name. The one place a task is registered; nothing else branches on a task's name.

An entry is "module:Class" of a `Task` subclass; its module imports no torch (config validation
loads it), its torch work lives in sibling modules it imports when it runs. Adding a task: one
folder under tasks/ (a Task subclass, its references and trial) and one line in `TASKS`.
A later plugin is one more entry here (entry point group `ray_unlearn.tasks`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..lazy import load

if TYPE_CHECKING:
    from .base import Task

TASKS: dict[str, str] = {
    "classification": "ray_unlearn.tasks.classification:ClassificationTask",
    "i2i": "ray_unlearn.tasks.i2i:I2ITask",
}


@functools.cache
def _instance(target: str) -> "Task":
    return load(target)()


def get_task(name: str) -> "Task":
    """The registered task `name` (one shared instance); ConfigError naming the choices otherwise."""
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError("task", f"{name!r} is not allowed; choose one of {', '.join(TASKS)}", value=name)
    return _instance(TASKS[name])


def all_tasks() -> list["Task"]:
    return [get_task(name) for name in TASKS]


__all__ = ["TASKS", "all_tasks", "get_task"]
