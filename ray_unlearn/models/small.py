"""Small models for 8x8 / 28x28 images and 1-D sequences (docs/references.md#architectures)."""

from __future__ import annotations

import math

from torch import nn

from .base import Classifier, conv_bn_relu


def small_cnn(input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """conv 1->16 | conv 16->32 s2 (mix layer) | conv 32->64 s2 | GAP | linear 64->K."""
    c = input_shape[0]
    features = nn.Sequential(conv_bn_relu(c, 16), conv_bn_relu(16, 32, stride=2))
    trunk = nn.Sequential(conv_bn_relu(32, 64, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Classifier(features, trunk, nn.Linear(64, num_classes))


def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: int = 256) -> Classifier:
    """Two hidden ReLU layers; the first hidden layer is the mix layer."""
    d = math.prod(input_shape)
    features = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(inplace=True))
    trunk = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
    return Classifier(features, trunk, nn.Linear(hidden, num_classes))


def cnn1d(input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """conv1d 1->32 k5 | 32->32 k3 s2 (mix layer) | 32->32 k3 s2 | flatten | linear -> K (docs/references.md#architectures)."""
    c, length = input_shape
    features = nn.Sequential(
        nn.Conv1d(c, 32, 5, padding=2), nn.ReLU(inplace=True),
        nn.Conv1d(32, 32, 3, stride=2, padding=1), nn.ReLU(inplace=True),
    )
    out_len = (((length + 1) // 2) + 1) // 2
    trunk = nn.Sequential(nn.Conv1d(32, 32, 3, stride=2, padding=1), nn.ReLU(inplace=True), nn.Flatten())
    return Classifier(features, trunk, nn.Linear(32 * out_len, num_classes))
