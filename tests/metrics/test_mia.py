"""MIA-Efficacy (docs/metrics.md#mia-efficacy): SVC(C=3, gamma="auto", rbf) on the true-class probability, fit on
|non-members| random retain samples (label 1) against the non-members (label 0); the result is
100 x the share of the forget set predicted non-member."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.svm import SVC

from ray_unlearn.metrics import mia_efficacy

from . import LogitsAreInputs, make_set

torch.set_num_threads(1)
MODEL = LogitsAreInputs()


def attack_predictions(members: list[float], nonmembers: list[float], queries: list[float]) -> np.ndarray:
    """The attack fit by hand: 1 = member."""
    x = np.array(members + nonmembers, dtype=np.float64)[:, None]
    y = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    return SVC(C=3, gamma="auto", kernel="rbf").fit(x, y).predict(np.array(queries)[:, None])


def test_mia_efficacy_of_confident_forget_samples_is_zero():
    retain = make_set([0.99] * 40)
    nonmembers = make_set([0.2] * 10)
    forget = make_set([0.99, 0.98, 0.97, 0.99])
    assert mia_efficacy(MODEL, retain, nonmembers, forget, seed=0) == 0.0


def test_mia_efficacy_counts_forget_samples_called_nonmembers():
    retain = make_set([0.99] * 40)
    nonmembers = make_set([0.2] * 10)
    assert mia_efficacy(MODEL, retain, nonmembers, make_set([0.2, 0.21, 0.19, 0.2]), seed=0) == 100.0
    # 3 of 4 forget samples look like non-members
    assert mia_efficacy(MODEL, retain, nonmembers, make_set([0.2, 0.21, 0.99, 0.2]), seed=0) == 75.0


def test_mia_efficacy_attack_sees_as_many_members_as_nonmembers():
    """200 retain samples at p = 0.6, 10 non-members at p = 0.5. Fit 10 against 10, the attack calls p = 0.5
    a non-member; fit on all 200 retain samples (or any count >= 20) it calls it a member."""
    retain, nonmembers, forget = make_set([0.6] * 200), make_set([0.5] * 10), make_set([0.5] * 6)
    balanced = attack_predictions([0.6] * 10, [0.5] * 10, [0.5])
    assert balanced[0] == 0 and attack_predictions([0.6] * 200, [0.5] * 10, [0.5])[0] == 1  # the case is discriminative
    assert attack_predictions([0.6] * 20, [0.5] * 10, [0.5])[0] == 1
    assert mia_efficacy(MODEL, retain, nonmembers, forget, seed=3) == 100.0


def test_mia_efficacy_member_count_is_capped_by_the_retain_set():
    """Fewer retain samples than non-members: all of them are members."""
    retain, nonmembers = make_set([0.99] * 3), make_set([0.2] * 10)
    want = 100.0 * float(np.mean(attack_predictions([0.99] * 3, [0.2] * 10, [0.6, 0.7, 0.8]) == 0))
    assert mia_efficacy(MODEL, retain, nonmembers, make_set([0.6, 0.7, 0.8]), seed=0) == pytest.approx(want)


def test_mia_efficacy_feature_is_the_true_class_probability_not_loss_or_entropy():
    """Members p_y = 0.99, non-members p_y = 0.2 (uniform). Forget samples:
    - p_y = 0.5: by confidence a non-member (0.5 < midpoint 0.595), by loss a member (-log 0.5 = 0.69 < midpoint 0.81);
    - p_y = 0.01 on a confidently wrong prediction: by confidence a non-member, by entropy a member (low entropy)."""
    members, nonmembers = [0.99] * 12, [0.2] * 12
    retain, nonmember_set = make_set(members), make_set(nonmembers)
    halfway = make_set([0.5] * 4)
    wrong = make_set([0.01] * 4, predicted=[1] * 4)
    # the hand attacks on each feature disagree on these forget sets
    assert attack_predictions(members, nonmembers, [0.5])[0] == 0
    assert attack_predictions([-math.log(c) for c in members], [-math.log(c) for c in nonmembers], [-math.log(0.5)])[0] == 1
    entropy = lambda p: -sum(q * math.log(q) for q in p)  # noqa: E731
    member_h = entropy([0.99] + [0.0025] * 4)
    nonmember_h = entropy([0.2] * 5)
    wrong_h = entropy(torch.softmax(wrong.x[0], 0).tolist())
    assert attack_predictions([member_h] * 12, [nonmember_h] * 12, [wrong_h])[0] == 1
    assert mia_efficacy(MODEL, retain, nonmember_set, halfway, seed=0) == 100.0
    assert mia_efficacy(MODEL, retain, nonmember_set, wrong, seed=0) == 100.0


def test_mia_efficacy_is_seeded():
    """Members are a seeded random subset: the same seed gives the same figure, other seeds other figures."""
    g = torch.Generator().manual_seed(0)
    retain = make_set((0.3 + 0.7 * torch.rand(200, generator=g)).tolist())
    nonmembers = make_set((0.1 + 0.7 * torch.rand(10, generator=g)).tolist())
    forget = make_set((0.1 + 0.9 * torch.rand(50, generator=g)).tolist())
    figures = {seed: [mia_efficacy(MODEL, retain, nonmembers, forget, seed=seed) for _ in range(3)] for seed in range(6)}
    assert all(len(set(v)) == 1 for v in figures.values()), figures
    assert len({v[0] for v in figures.values()}) > 1, "the member subset does not depend on the seed"


def test_mia_efficacy_of_an_empty_forget_set_is_nan():
    assert math.isnan(mia_efficacy(MODEL, make_set([0.9] * 3), make_set([0.2] * 3), make_set([]), seed=0))


def test_mia_efficacy_attack_is_an_rbf_svc_with_c3_and_gamma_auto():
    """Members at p = 0.7, non-members spread over [0.1, 0.8], forget samples on a grid: the figure is the
    share of the grid the hand-fit SVC(C=3, gamma="auto", rbf) calls non-member; C=1 or gamma="scale" differ."""
    members, nonmembers, grid = [0.7] * 8, np.linspace(0.1, 0.8, 8).tolist(), np.linspace(0.02, 0.98, 49).tolist()
    forget = make_set(grid)
    true_class_p = torch.softmax(forget.x.double(), 1).gather(1, forget.y[:, None]).flatten().tolist()
    x = np.array(members + nonmembers)[:, None]
    y = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]

    def figure(**svc) -> float:
        predicted = SVC(kernel="rbf", **svc).fit(x, y).predict(np.array(true_class_p)[:, None])
        return 100.0 * float(np.mean(predicted == 0))

    want = figure(C=3, gamma="auto")
    assert want != figure(C=1, gamma="auto") and want != figure(C=3, gamma="scale")  # the case is discriminative
    assert mia_efficacy(MODEL, make_set(members), make_set(nonmembers), forget, seed=0) == pytest.approx(want)
