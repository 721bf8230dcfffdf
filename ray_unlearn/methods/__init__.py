"""Classification unlearning methods, by name. Plain PyTorch: no ray, optuna or mlflow.

`catalog.CATALOG` declares every method (task, `Params`, description, where its class lives)
without importing torch; the classes load on first use (`from ray_unlearn.methods import METHODS`).
`ray_unlearn.registry` joins the methods of every task.

Adding a method: one module with a `Method` subclass, its `Params` in params.py, one line in
catalog.py, one YAML in search_spaces/; tests/methods/test_contract.py then covers it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lazy import exports

if TYPE_CHECKING:
    from .base import Method


def get_method(name: str) -> "Method":
    from ..errors import ConfigError
    from .catalog import CATALOG

    try:
        return CATALOG[name].load()()
    except KeyError:
        raise ConfigError("method", f"unknown method {name!r}; allowed: {', '.join(sorted(CATALOG))}", value=name) from None


_exports = exports(__name__, {"Context": ".base", "Method": ".base", "UnlearnData": ".base"})


def __getattr__(name: str) -> Any:
    if name == "METHODS":  # name -> Method class, every class imported now
        from .catalog import CATALOG

        return {n: e.load() for n, e in CATALOG.items()}
    return _exports(name)


__all__ = ["METHODS", "Context", "Method", "UnlearnData", "get_method"]
