"""Methods, datasets and models from other installed packages, through entry points.

A package declares, in its pyproject.toml:

    [project.entry-points."ray_unlearn.methods"]
    my_method = "my_pkg.methods:MyMethod"          # a methods.base.Method subclass (or a MethodEntry)
    [project.entry-points."ray_unlearn.datasets"]
    my_data = "my_pkg.data:load_my_data"           # loader(root=None, download=False) -> RawDataset, with `.info`
    [project.entry-points."ray_unlearn.models"]
    my_net = "my_pkg.models:build"                 # builder(input_shape, num_classes, **kwargs) -> nn.Module

and they are listed, validated, tuned and tracked like the built-in ones. Discovery is lazy (the
first time a registry is read) and a plugin that fails to import, or declares something invalid,
is reported by name (`broken()`, `ray-unlearn methods` prints it) and skipped: it never takes the
built-in methods down with it. A plugin may not shadow a built-in name.
"""

from __future__ import annotations

import functools
import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Any

logger = logging.getLogger(__name__)

GROUPS = ("ray_unlearn.methods", "ray_unlearn.datasets", "ray_unlearn.models")
_BROKEN: dict[str, str] = {}  # "group: name (value)" -> what went wrong


def broken() -> dict[str, str]:
    """Plugins that could not be loaded, and why (after the registries were read)."""
    for group in GROUPS:
        loaded(group)
    return dict(_BROKEN)


def _note(group: str, ep: EntryPoint, problem: str) -> None:
    key = f"{group}: {ep.name} ({ep.value})"
    if key not in _BROKEN:
        _BROKEN[key] = problem
        logger.warning("plugin %s is skipped: %s", key, problem)


@functools.cache
def loaded(group: str) -> dict[str, tuple[EntryPoint, Any]]:
    """name -> (entry point, the object it names) for every plugin of `group` that imports."""
    out: dict[str, tuple[EntryPoint, Any]] = {}
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
        except Exception as err:  # noqa: BLE001 - any failure of a third-party import is that plugin's
            _note(group, ep, f"cannot be imported: {type(err).__name__}: {err}")
            continue
        if ep.name in out:
            _note(group, ep, f"the name {ep.name!r} is declared twice")
            continue
        out[ep.name] = (ep, obj)
    return out


def reject(group: str, ep: EntryPoint, problem: str) -> None:
    """A registry found a loaded plugin unusable: report it like an import failure."""
    _note(group, ep, problem)


def target(ep: EntryPoint) -> str:
    """The "module:attribute" an entry point names (what the registries store)."""
    return ep.value.replace(" ", "")
