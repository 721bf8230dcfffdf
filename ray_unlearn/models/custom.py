"""Models that are not in the catalog: torchvision's classifiers by name, any builder by import path,
and the mix layer a method reads from a model that does not declare one.

`model.arch: torchvision/resnet50` builds `torchvision.models.get_model("resnet50", weights=None,
num_classes=K)` (no download unless `model.kwargs.weights` asks for one) and adapts its input:
the first convolution takes the dataset's channels, and for small images (<= 64 px) a ResNet gets
the CIFAR stem our resnet18 has (3x3 stride-1 first conv, no max-pool), as SalUn and AMUN use.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

SMALL_IMAGE = 64  # at most this many pixels a side: the ImageNet stem (7x7 stride 2 + max-pool) is too coarse


def torchvision_model(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
    import torchvision

    kwargs.setdefault("weights", None)
    try:
        model = torchvision.models.get_model(name, num_classes=num_classes, **kwargs)
    except (ValueError, KeyError) as err:
        raise ConfigError("model.arch", f"torchvision/{name}: {err}", value=f"torchvision/{name}") from None
    channels = input_shape[0]
    if len(input_shape) == 3 and isinstance(getattr(model, "conv1", None), nn.Conv2d) and max(input_shape[1:]) <= SMALL_IMAGE:
        model.conv1 = nn.Conv2d(channels, model.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        if hasattr(model, "maxpool"):
            model.maxpool = nn.Identity()
        return model
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and first.in_channels != channels:
        _replace_module(model, first, nn.Conv2d(channels, first.out_channels, first.kernel_size, first.stride, first.padding,
                                                 bias=first.bias is not None))
    return model


def _replace_module(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for name, module in root.named_modules():
        for child_name, child in module.named_children():
            if child is old:
                setattr(module, child_name, new)
                return


def attach_mix_layer(model: nn.Module, layer: str) -> nn.Module:
    """Give `model` a `mix_features(x)`: the output of its submodule `layer` (MixUnlearn's mix layer)."""
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        names = [n for n in modules if n and "." not in n]
        raise ConfigError("model.mix_layer", f"{layer!r} is not a submodule of the model; top-level ones: {', '.join(names)}",
                          value=layer)
    model._mix_layer = layer
    model.mix_features = types.MethodType(_mix_features, model)
    return model


def _mix_features(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    captured: list[torch.Tensor] = []
    handle = dict(self.named_modules())[self._mix_layer].register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        self(x)
    finally:
        handle.remove()
    return captured[0]
