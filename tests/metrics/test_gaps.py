"""Avg Gap and the other gaps to the retrained model, and `evaluate`'s splits (docs/metrics.md#gaps-and-avg-gap)."""

from __future__ import annotations

import pytest
import torch

from ray_unlearn.data.base import DatasetInfo, Splits, TensorSet
from ray_unlearn.metrics import evaluate, gaps, with_reference

from . import LogitsAreInputs, make_set

torch.set_num_threads(1)

# every gap term differs, and no two sums of terms coincide
UNLEARNED = {"forget_acc": 90.0, "ua": 10.0, "retain_acc": 90.0, "val_acc": 80.0, "mia": 30.0, "test_acc": 70.0, "test_mia": 40.0}
RETRAIN = {"forget_acc": 96.0, "ua": 4.0, "retain_acc": 99.0, "val_acc": 85.0, "mia": 12.0, "test_acc": 88.0, "test_mia": 13.0}
# |UA - UA_u| = 6, |RA - RA_u| = 9, |val - val_u| = 5, |MIA - MIA_u| = 18, |test - test_u| = 18, |test MIA - ...| = 27


def test_avg_gap_is_the_mean_of_four_absolute_gaps_on_validation():
    assert gaps(UNLEARNED, RETRAIN)["avg_gap"] == pytest.approx((6 + 9 + 5 + 18) / 4)


def test_test_avg_gap_uses_test_accuracy_and_test_mia():
    assert gaps(UNLEARNED, RETRAIN)["test_avg_gap"] == pytest.approx((6 + 9 + 18 + 27) / 4)


def test_single_gaps_are_absolute_differences():
    out = gaps(UNLEARNED, RETRAIN)
    assert out["mia_gap"] == 18.0 and out["ua_gap"] == 6.0 and out["test_mia_gap"] == 27.0
    swapped = gaps(RETRAIN, UNLEARNED)  # a gap has no sign
    assert {k: swapped[k] for k in out} == pytest.approx(out)


def test_gaps_without_test_figures_have_no_test_gaps():
    val_only = {k: v for k, v in UNLEARNED.items() if not k.startswith("test_")}
    out = gaps(val_only, RETRAIN)
    assert "test_avg_gap" not in out and "test_mia_gap" not in out
    assert out["avg_gap"] == pytest.approx(9.5)


def test_with_reference_adds_gaps_and_retrain_figures():
    out = with_reference(UNLEARNED, RETRAIN)
    assert out["avg_gap"] == pytest.approx(9.5) and out["retrain_mia"] == 12.0 and out["mia"] == 30.0


# --- evaluate: each figure on its split ------------------------------------------------------------

INFO = DatasetInfo(name="hand", num_classes=5, input_shape=(5,), input_range=None)


def splits(forget: TensorSet, retain: TensorSet, val: TensorSet, test: TensorSet, forget_classes: tuple[int, ...] = ()) -> Splits:
    train = forget.concat(retain)
    n_f = len(forget)
    return Splits(INFO, train, val, test, torch.arange(n_f), torch.arange(n_f, len(train)), forget_classes)


def test_evaluate_reports_each_accuracy_on_its_split():
    """Forget 1/4 correct (UA 75), retain 8/10 (RA 80), validation 3/5 (60), test 1/2 (50)."""
    wrong = 1  # predicted = true class + 1
    forget = make_set([0.9, 0.05, 0.05, 0.05], predicted=[None, wrong, wrong, wrong])
    retain = make_set([0.9] * 8 + [0.05] * 2, predicted=[None] * 8 + [wrong] * 2)
    val = make_set([0.9] * 3 + [0.05] * 2, predicted=[None] * 3 + [wrong] * 2)
    test = make_set([0.9, 0.05], predicted=[None, wrong])
    out = evaluate(LogitsAreInputs(), splits(forget, retain, val, test), seed=0)
    assert out["forget_acc"] == pytest.approx(25.0) and out["ua"] == pytest.approx(75.0)
    assert out["retain_acc"] == pytest.approx(80.0)
    assert out["val_acc"] == pytest.approx(60.0) and out["test_acc"] == pytest.approx(50.0)


def test_evaluate_mia_uses_validation_nonmembers_and_test_mia_test_nonmembers():
    """Members p = 0.99; forget p = 0.6. Validation non-members p = 0.5: the forget set looks like them (100).
    Test non-members p ~ 0: the forget set looks like members (0)."""
    forget = make_set([0.6, 0.62, 0.58, 0.6])
    retain = make_set([0.99] * 30)
    val = make_set([0.48, 0.5, 0.52, 0.49, 0.51, 0.5])
    test = make_set([0.01, 0.001, 0.02, 0.01, 0.001, 0.03], predicted=[1] * 6)
    out = evaluate(LogitsAreInputs(), splits(forget, retain, val, test), seed=0)
    assert out["mia"] == 100.0 and out["test_mia"] == 0.0
    val_only = evaluate(LogitsAreInputs(), splits(forget, retain, val, test), seed=0, with_test=False)
    assert val_only["mia"] == 100.0 and "test_acc" not in val_only and "test_mia" not in val_only


def test_evaluate_class_wise_splits_test_accuracy_by_forgotten_class():
    """Forgotten class 0: test samples of class 0 (i = 0, 5) are right, the other 8 of 10 half right."""
    forget = make_set([0.9])
    retain = make_set([0.9] * 5)
    conf = [0.9, 0.9, 0.05, 0.9, 0.05, 0.9, 0.9, 0.05, 0.9, 0.05]  # sample i has class i mod 5
    test = make_set(conf, predicted=[None if c > 0.5 else 1 for c in conf])
    out = evaluate(LogitsAreInputs(), splits(forget, retain, make_set([0.2] * 3), test, forget_classes=(0,)), seed=0)
    assert out["test_f_acc"] == pytest.approx(100.0) and out["test_r_acc"] == pytest.approx(50.0)
    assert out["test_acc"] == pytest.approx(60.0)


def test_evaluate_attack_members_come_from_the_retain_set_not_the_forget_set():
    """30 forget samples at p = 0.4, 6 retain samples at p = 0.99, validation non-members at p ~ 0: members
    drawn from the retain set call the forget set non-members (100); drawn from the whole train set they
    would mostly be forget samples, and one forget-like member is enough to call it members."""
    forget = make_set([0.4] * 30)
    retain = make_set([0.99] * 6)
    val = make_set([0.01, 0.001, 0.02, 0.01, 0.001, 0.03], predicted=[1] * 6)
    out = evaluate(LogitsAreInputs(), splits(forget, retain, val, val), seed=0)
    assert out["mia"] == 100.0
