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


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int, kwargs: dict[str, Any] | None = None,
                mix_layer: str | None = None) -> "nn.Module":
    """A fresh model: a catalog (built-in or plugin) name, torchvision/<name>, or "package.module:builder";
    builders take (input_shape, num_classes, **kwargs). `mix_layer` names the submodule MixUnlearn reads."""
    from torch import nn

    from ..errors import ConfigError
    from .archs import CATALOG, TORCHVISION_PREFIX

    if arch in CATALOG:
        builder = load(CATALOG[arch][0])
    elif arch.startswith(TORCHVISION_PREFIX):
        from .custom import torchvision_model

        name = arch[len(TORCHVISION_PREFIX):]
        builder = lambda shape, classes, **kw: torchvision_model(name, shape, classes, **kw)  # noqa: E731
    else:
        try:
            builder = load(arch)
        except (ImportError, AttributeError, ValueError) as err:
            raise ConfigError("model.arch", f"{arch!r} cannot be loaded: {type(err).__name__}: {err}", value=arch) from None
    try:
        model = builder(tuple(input_shape), num_classes, **dict(kwargs or {}))
    except TypeError as err:
        raise ConfigError("model.kwargs", f"{arch}'s builder refused them: {err}", value=dict(kwargs or {})) from None
    if not isinstance(model, nn.Module):
        raise ConfigError("model.arch", f"{arch}'s builder returned {type(model).__name__}, not a torch.nn.Module", value=arch)
    if mix_layer:
        from .custom import attach_mix_layer

        attach_mix_layer(model, mix_layer)
    return model


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
