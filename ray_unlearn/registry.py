"""Every method the sweep can run, by name: the methods each registered task declares.

Torch-free: `CATALOG` holds each method's task, `Params` and description (what config
validation and `ray-unlearn methods` read); a `Method` class is imported when it runs.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .methods.entry import MethodEntry
from .tasks import all_tasks


def _catalog() -> dict[str, MethodEntry]:
    catalog: dict[str, MethodEntry] = {}
    for task in all_tasks():
        for name, entry in task.methods.items():
            if name in catalog:
                raise ValueError(f"method {name!r} is declared by tasks {catalog[name].task} and {entry.task}")
            catalog[name] = entry
    return catalog


CATALOG: dict[str, MethodEntry] = _catalog()


def get_method(name: str) -> Any:
    """A fresh instance of method `name` (a methods.base.Method); imports its module now."""
    try:
        return CATALOG[name].load()()
    except KeyError:
        raise ConfigError("method", f"unknown method {name!r}; allowed: {', '.join(sorted(CATALOG))}", value=name) from None


def __getattr__(name: str) -> Any:
    if name == "METHODS":  # name -> Method class, every method's module (and torch) imported now
        return {n: e.load() for n, e in CATALOG.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
