"""MIA-ASR, LAF protocol (docs/metrics.md#mia-asr)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ray_unlearn.data.base import TensorSet
from ray_unlearn.metrics.asr import asr_features, asr_split, mia_asr, mia_asr_model

N_CLASSES = 10


def _softmax_rows(n: int, logit_scale: float, rng: np.random.RandomState) -> np.ndarray:
    z = logit_scale * rng.normal(size=(n, N_CLASSES))
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def test_small_test_set_is_cut_into_disjoint_halves():
    split = asr_split(n_retain=1000, n_test=360, n_forget=100, seed=0)
    assert len(split.members) == 100 and len(np.unique(split.members)) == 100
    assert split.members.min() >= 0 and split.members.max() < 1000
    assert np.array_equal(split.train_nonmembers, np.arange(180))
    assert np.array_equal(split.eval_nonmembers, np.arange(180, 280))  # as many as |D_f|


def test_small_test_set_smaller_than_the_forget_set_gives_its_whole_second_half():
    split = asr_split(n_retain=1000, n_test=360, n_forget=300, seed=0)
    assert len(split.members) == 300
    assert np.array_equal(split.train_nonmembers, np.arange(180))
    assert np.array_equal(split.eval_nonmembers, np.arange(180, 360))


def test_cifar_sized_sets_follow_laf():
    # 10,000 test samples: the first 5,000 train the attack, the next 5,000 evaluate it
    split = asr_split(n_retain=45_000, n_test=10_000, n_forget=6_000, seed=1)
    assert len(split.members) == 5_000  # |D_f| capped at 5,000
    assert np.array_equal(split.train_nonmembers, np.arange(5_000))
    assert np.array_equal(split.eval_nonmembers, np.arange(5_000, 10_000))
    split = asr_split(n_retain=45_000, n_test=12_000, n_forget=500, seed=1)
    assert len(split.members) == 500
    assert np.array_equal(split.eval_nonmembers, np.arange(5_000, 5_500))


def test_members_are_a_seeded_subset():
    a, b = asr_split(1000, 100, 50, seed=3), asr_split(1000, 100, 50, seed=3)
    assert np.array_equal(a.members, b.members)
    assert not np.array_equal(a.members, asr_split(1000, 100, 50, seed=4).members)


def test_features_are_sorted_descending():
    assert np.array_equal(asr_features(np.array([[0.2, 0.5, 0.3]])), [[0.5, 0.3, 0.2]])


def test_confident_members_against_flat_non_members_are_caught():
    rng = np.random.RandomState(0)
    retain, forget = _softmax_rows(2000, 4.0, rng), _softmax_rows(300, 4.0, rng)
    test = _softmax_rows(800, 0.5, rng)
    assert mia_asr(retain, test, forget, seed=0) > 90.0


def test_identical_distributions_give_about_fifty():
    # 500 + 500 evaluation samples: the accuracy's sd is about 1.6 points
    rng = np.random.RandomState(1)
    retain, forget, test = (_softmax_rows(n, 2.0, rng) for n in (3000, 500, 2000))
    assert mia_asr(retain, test, forget, seed=0) == pytest.approx(50.0, abs=8.0)


def test_model_version_uses_the_model_softmax():
    torch.manual_seed(0)
    model = nn.Linear(5, N_CLASSES)
    gen = torch.Generator().manual_seed(1)

    def data(n: int) -> TensorSet:
        return TensorSet(torch.randn(n, 5, generator=gen), torch.randint(0, N_CLASSES, (n,), generator=gen))

    retain, test, forget = data(200), data(120), data(40)
    with torch.no_grad():
        probs = [torch.softmax(model(s.x), 1).double().numpy() for s in (retain, test, forget)]
    assert mia_asr_model(model, retain, test, forget, seed=2) == pytest.approx(mia_asr(*probs, seed=2), abs=1e-9)
