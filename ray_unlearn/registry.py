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


def _plugin_entry(ep: Any, obj: Any) -> MethodEntry | None:
    """A plugin's method as a catalog entry: a MethodEntry as it is, or one read off its Method class."""
    from . import plugins

    if isinstance(obj, MethodEntry):
        return obj
    try:
        return MethodEntry(obj.name, getattr(obj, "task", "classification"), obj.Params, plugins.target(ep),
                           obj.summary, getattr(obj, "paper", ""), getattr(obj, "uses_retain", True), dict(getattr(obj, "quick", {})))
    except AttributeError as err:
        plugins.reject("ray_unlearn.methods", ep, f"is not a Method subclass (missing {err.name or err})")
        return None


def _with_plugins(catalog: dict[str, MethodEntry]) -> dict[str, MethodEntry]:
    """Methods of installed packages (entry point group `ray_unlearn.methods`) after the built-in ones."""
    import dataclasses

    from . import plugins
    from .tasks import TASKS

    for _, (ep, obj) in plugins.loaded("ray_unlearn.methods").items():
        entry = _plugin_entry(ep, obj)
        if entry is None:
            continue
        if entry.name in catalog:
            plugins.reject("ray_unlearn.methods", ep, f"method {entry.name!r} is a built-in method; choose another name")
        elif entry.task not in TASKS:
            plugins.reject("ray_unlearn.methods", ep, f"its task {entry.task!r} is not one of {', '.join(TASKS)}")
        elif not dataclasses.is_dataclass(entry.Params):
            plugins.reject("ray_unlearn.methods", ep, "its Params is not a dataclass of hp() fields")
        else:
            catalog[entry.name] = entry
    return catalog


CATALOG: dict[str, MethodEntry] = _with_plugins(_catalog())


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
