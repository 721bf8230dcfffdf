"""Every classification metric of a model on a split, under the names of docs/metrics.md#metric-names.

Tuning selects on validation figures (`val_acc`, `mia` with validation
non-members); `test_*` figures are computed for every model but only reported.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data.base import Splits
from ..train import accuracy
from .asr import mia_asr_model
from .mia import mia_efficacy

# the four figures Avg Gap averages (SalUn protocol; validation replaces test while tuning)
GAP_METRICS = ("ua", "retain_acc", "val_acc", "mia")
TEST_GAP_METRICS = ("ua", "retain_acc", "test_acc", "test_mia")


def evaluate(model: nn.Module, splits: Splits, seed: int, *, with_test: bool = True, asr: bool = False) -> dict[str, float]:
    """UA, RA, validation/test accuracy and MIA-Efficacy of `model` (eval mode); with `asr` also
    MIA-ASR (LAF protocol; validation non-members while tuning, `test_mia_asr` with the test split)."""
    forget, retain = splits.forget, splits.retain
    out = {
        "forget_acc": accuracy(model, forget),
        "retain_acc": accuracy(model, retain),
        "val_acc": accuracy(model, splits.val),
        "mia": mia_efficacy(model, retain, splits.val, forget, seed),
    }
    out["ua"] = 100.0 - out["forget_acc"]
    if asr:
        out["mia_asr"] = mia_asr_model(model, retain, splits.val, forget, seed)
    if splits.forget_classes:  # what should be kept: the collapse check compares this to the original's
        out["val_r_acc"] = accuracy(model, _kept_classes(splits.val, splits.forget_classes))
    if with_test:
        out["test_acc"] = accuracy(model, splits.test)
        out["test_mia"] = mia_efficacy(model, retain, splits.test, forget, seed)
        if asr:
            out["test_mia_asr"] = mia_asr_model(model, retain, splits.test, forget, seed)
        if splits.forget_classes:
            forgotten = torch.isin(splits.test.y, torch.tensor(splits.forget_classes, device=splits.test.y.device))
            out["test_r_acc"] = accuracy(model, splits.test.subset(torch.nonzero(~forgotten).flatten()))
            out["test_f_acc"] = accuracy(model, splits.test.subset(torch.nonzero(forgotten).flatten()))
    return out


def _kept_classes(data, classes: tuple[int, ...]):
    forgotten = torch.isin(data.y, torch.tensor(classes, device=data.y.device))
    return data.subset(torch.nonzero(~forgotten).flatten())


def gaps(metrics: dict[str, float], retrain: dict[str, float]) -> dict[str, float]:
    """Absolute differences to the retrain model: mia_gap, ua_gap, avg_gap (and test_ variants)."""
    out = {
        "mia_gap": abs(metrics["mia"] - retrain["mia"]),
        "ua_gap": abs(metrics["ua"] - retrain["ua"]),
        "avg_gap": _mean_abs_diff(metrics, retrain, GAP_METRICS),
    }
    if "test_acc" in metrics and "test_acc" in retrain:
        out["test_mia_gap"] = abs(metrics["test_mia"] - retrain["test_mia"])
        out["test_avg_gap"] = _mean_abs_diff(metrics, retrain, TEST_GAP_METRICS)
    for key in ("mia_asr", "test_mia_asr"):  # MIA-ASR (LAF protocol), where both were computed
        if key in metrics and key in retrain:
            out[f"{key}_gap"] = abs(metrics[key] - retrain[key])
    return out


def _mean_abs_diff(a: dict[str, float], b: dict[str, float], keys: tuple[str, ...]) -> float:
    diffs = [abs(a[k] - b[k]) for k in keys]
    return math.fsum(diffs) / len(diffs)


def with_reference(metrics: dict[str, float], retrain: dict[str, float]) -> dict[str, float]:
    """Metrics plus their gaps plus each `retrain_*` reference figure beside them."""
    out = dict(metrics)
    out.update(gaps(metrics, retrain))
    out.update({f"retrain_{k}": v for k, v in retrain.items()})
    return out
