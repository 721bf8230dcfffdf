"""Model registry. Plain PyTorch: no ray, optuna or mlflow."""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import ConfigError
from .base import Classifier
from .resnet import resnet18
from .small import cnn1d, mlp, small_cnn

# arch -> (builder, number of spatial dims of the input it takes; None = any)
ARCHS: dict[str, tuple[Callable[..., Classifier], int | None]] = {
    "small_cnn": (small_cnn, 2),
    "mlp": (mlp, None),
    "resnet18": (resnet18, 2),
    "cnn1d": (cnn1d, 1),
}


def check_compatible(arch: str, input_shape: tuple[int, ...], dataset: str) -> None:
    _, spatial = ARCHS[arch]
    if spatial is not None and len(input_shape) - 1 != spatial:
        fits = sorted(a for a, (_, s) in ARCHS.items() if s is None or s == len(input_shape) - 1)
        raise ConfigError(
            "model.arch",
            f"{arch} takes {spatial}-D inputs but dataset {dataset} gives shape {input_shape}; use one of {', '.join(fits)}",
            value=arch,
        )


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    builder, _ = ARCHS[arch]
    return builder(tuple(input_shape), num_classes)


__all__ = ["ARCHS", "Classifier", "build_model", "check_compatible"]
