"""Metric tests. Helpers: sets whose model outputs the test controls (the model is the identity, so inputs are the logits)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ray_unlearn.data.base import TensorSet

K = 5  # classes


class LogitsAreInputs(nn.Module):
    """A classifier whose logits are its inputs: a sample's row is log p."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def probs_row(true_class: int, confidence: float, predicted: int | None = None, k: int = K) -> list[float]:
    """p(true_class) = confidence; the rest on `predicted` (if given, with all but 1e-3 of it) or spread evenly."""
    rest = 1.0 - confidence
    if predicted is None or predicted == true_class:
        row = [rest / (k - 1)] * k
    else:
        row = [1e-3 * rest / (k - 2)] * k
        row[predicted] = rest * (1 - 1e-3)
    row[true_class] = confidence
    return row


def make_set(confidences: Sequence[float], predicted: Sequence[int | None] | None = None, k: int = K) -> TensorSet:
    """Samples of true class i mod k with the given true-class probabilities (logits = log p)."""
    predicted = predicted or [None] * len(confidences)
    rows, labels = [], []
    for i, (c, pred) in enumerate(zip(confidences, predicted)):
        y = i % k
        rows.append([math.log(p) for p in probs_row(y, c, None if pred is None else (y + pred) % k, k)])
        labels.append(y)
    return TensorSet(torch.tensor(rows, dtype=torch.float32), torch.tensor(labels))
