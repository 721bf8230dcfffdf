"""ResNet-18 with the CIFAR stem (3x3 conv, no max-pool), as in the AMUN and SalUn code."""

from __future__ import annotations

import torch
from torch import nn

from .base import Classifier, Normalize

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def _stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1))


def resnet18(input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """Works on 28x28 and 32x32 inputs; the mix layer is stage 3 (256 x H/4 x W/4)."""
    c = input_shape[0]
    normalize = Normalize(CIFAR_MEAN, CIFAR_STD) if c == 3 else Normalize((0.5,) * c, (0.5,) * c)
    features = nn.Sequential(
        nn.Conv2d(c, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        _stage(64, 64, 1), _stage(64, 128, 2), _stage(128, 256, 2),
    )
    trunk = nn.Sequential(_stage(256, 512, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Classifier(features, trunk, nn.Linear(512, num_classes), normalize=normalize)
