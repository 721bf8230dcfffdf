"""Loading by import path, so that declarations (what exists, its hyperparameters) import no torch.

A registry entry names its implementation as "package.module:attribute"; the module is imported
the first time the entry is used. A package's `__init__` uses `exports` for the same reason:
`import ray_unlearn.methods.params` must not import every method's torch code.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def load(target: str) -> Any:
    """The object `target` ("package.module:attribute") names, importing its module now."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `names[name]` (a submodule of `package`) on first use."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name], package), name)

    return __getattr__
