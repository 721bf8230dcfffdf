"""Unlearning methods, by name. Plain PyTorch: no ray, optuna or mlflow.

Adding a method: one module with a `Method` subclass, one line below, one
YAML in search_spaces/; tests/methods/test_contract.py then covers it.
"""

from __future__ import annotations

from ..errors import ConfigError
from .amun import Amun
from .base import Context, Method, UnlearnData
from .finetune import FineTune
from .gradient_ascent import GradientAscent

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in [
        FineTune,
        GradientAscent,
        Amun,
    ]
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]()
    except KeyError:
        raise ConfigError("method", f"unknown method {name!r}; allowed: {', '.join(sorted(METHODS))}", value=name) from None


__all__ = ["METHODS", "Context", "Method", "UnlearnData", "get_method"]
