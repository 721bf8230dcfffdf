"""The continuous tuning signal: logit-scaled confidence and the 1-D Wasserstein distance, on hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ray_unlearn.metrics.confidence import confidence_distance, logit_confidence_of, wasserstein_1d


def test_logit_confidence_is_log_odds_of_the_true_class():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, -1.0]])
    labels = torch.tensor([0, 2, 1])
    phi = logit_confidence_of(logits, labels)
    p = torch.softmax(logits.double(), 1)
    by_hand = [math.log(p[i, y] / (1 - p[i, y])) for i, y in enumerate(labels.tolist())]
    assert phi == pytest.approx(by_hand, abs=1e-9)
    assert phi[1] == pytest.approx(math.log(0.5), abs=1e-9), "uniform over 3: p = 1/3, odds 1/2"


def test_wasserstein_of_shifted_sets_is_the_shift_and_ignores_order():
    a = np.array([0.0, 1.0, 2.0, 3.0])
    assert wasserstein_1d(a, a[::-1] + 2.5) == pytest.approx(2.5)
    assert wasserstein_1d(a, a[::-1]) == pytest.approx(0.0)
    # one point moved by 4 of 4 points: the mean transport is 1
    assert wasserstein_1d(a, np.array([0.0, 1.0, 2.0, 7.0])) == pytest.approx(1.0)


def test_distance_is_zero_for_the_retrain_models_own_confidences_and_grows_with_confidence():
    labels = torch.tensor([0, 1, 2, 0])
    retrain = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 2.0], [0.2, 0.0, 0.0]])
    phi_r = logit_confidence_of(retrain, labels)
    assert confidence_distance(retrain, phi_r, labels) == pytest.approx(0.0, abs=1e-12)
    sure = retrain * 3
    assert confidence_distance(sure, phi_r, labels) > confidence_distance(retrain * 2, phi_r, labels) > 0
