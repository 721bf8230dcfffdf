"""Model registry. Plain PyTorch: no ray, optuna or mlflow.

`archs.CATALOG` declares every architecture without importing torch; builders load on use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..lazy import exports, load
from .archs import check_compatible

if TYPE_CHECKING:
    from torch import nn

    from .base import Classifier


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int) -> "nn.Module":
    from .archs import CATALOG

    builder, _ = CATALOG[arch]
    return load(builder)(tuple(input_shape), num_classes)


def _archs() -> dict[str, tuple[Callable[..., "Classifier"], int | None]]:
    """arch -> (builder, number of spatial dims of the input it takes; None = any), builders imported now."""
    from .archs import CATALOG

    return {name: (load(builder), spatial) for name, (builder, spatial) in CATALOG.items()}


_exports = exports(__name__, {"Classifier": ".base"})


def __getattr__(name: str) -> Any:
    if name == "ARCHS":
        return _archs()
    return _exports(name)


__all__ = ["ARCHS", "Classifier", "build_model", "check_compatible"]
