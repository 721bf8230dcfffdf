"""Classification unlearning methods, by name. Plain PyTorch: no ray, optuna or mlflow.

Each method is declared once, on its `Params` dataclass in params.py (task, description, where its
class lives; no torch); `catalog.CATALOG` collects them and the classes load on first use
(`METHODS`: name -> class, this task's). `ray_unlearn.registry` joins every task's methods and the
plugins', and its `get_method` is the one lookup.

Adding a method: its Params and declaration in params.py, one module with a `Method` subclass, one
YAML in search_spaces/; tests/test_contract.py then covers it.
"""

from __future__ import annotations

from typing import Any

from ..lazy import exports

_exports = exports(__name__, {"Context": ".base", "Method": ".base", "UnlearnData": ".base"})


def __getattr__(name: str) -> Any:
    if name == "METHODS":  # name -> Method class, every class imported now
        from .catalog import CATALOG

        return {n: e.load() for n, e in CATALOG.items()}
    return _exports(name)


__all__ = ["METHODS", "Context", "Method", "UnlearnData"]
