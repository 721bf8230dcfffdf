"""The shape every classifier shares: features -> trunk -> classifier.

`features` ends at the "mix layer" (the intermediate representation MixUnlearn's
MixBlock reads, docs/references.md#the-mix-layer); `trunk` maps it to the penultimate vector;
`classifier` is the final linear layer. forward = classifier(trunk(features(x))).
"""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, features: nn.Module, trunk: nn.Module, classifier: nn.Linear, normalize: nn.Module | None = None):
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.features = features
        self.trunk = trunk
        self.classifier = classifier

    def mix_features(self, x: torch.Tensor) -> torch.Tensor:
        """Intermediate features h(x) at the mix layer."""
        return self.features(self.normalize(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate representation (input of the final linear layer)."""
        return self.trunk(self.mix_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class Normalize(nn.Module):
    """Per-channel mean/std inside the model, so attacks and clipping stay in pixel space."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )
