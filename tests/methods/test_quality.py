"""Quality of every classification method at its shipped starting point (the `start:` values of its
search_spaces/ YAML, else METHODS.md defaults), on digits class-wise and MNIST-1D random 10 %.

What a faithful implementation must show is stated per method, with the reason where a method is
expected NOT to do something (e.g. AMUN does not erase a class: it keeps the forget set's labels).
The tables are printed at the end of the pytest run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ray_unlearn.cache import Store
from ray_unlearn.config import load_experiment
from ray_unlearn.methods import METHODS
from ray_unlearn.progress import table
from ray_unlearn.references import prepare
from ray_unlearn.trial import run_trial

from ..conftest import QUALITY_TABLES

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
# Fine-tuning (plain or with an L1 penalty at METHODS.md strength) keeps predicting a class it no
# longer sees on digits; the AMUN family trains on the forget set with its true labels.
KEEPS_THE_CLASS = {"finetune", "amun", "amun_salun", "amun_no_retain"}
# At their tuned starting points these leave MNIST-1D's forget accuracy at 100 %, as FT and GA leave
# CIFAR-10's at > 99 % in the SalUn table (UA 0.63 / 0.69): too little signal per step at this scale.
STAYS_ON_MNIST1D = {"finetune", "gradient_ascent", "scrub"}


def run_at_start(path: Path, method: str, cache_dir: Path, overrides: list[str]) -> tuple[dict, dict]:
    torch.set_num_threads(1)
    exp = load_experiment(path, overrides)
    refs, _ = prepare(exp, Store(cache_dir), torch.device("cpu"))
    start = exp.start_point()
    result = run_trial(exp, refs, start, seed=0, device=torch.device("cpu"), memo=Store(cache_dir).memo(refs.key))
    assert result.status == "ok", result.message
    return result.metrics, refs.original_metrics


def digits_classwise(method: str) -> tuple[Path, list[str]]:
    own = SPACES / f"digits_{method}.yaml"
    if own.exists() and load_experiment(own).data.forget.kind == "class":
        return own, []
    return SPACES / "digits_finetune.yaml", [f"method={method}", "fixed={}", "search={}"]


@pytest.fixture(scope="module")
def digits_table(cache_dir):
    rows = {}
    for method in METHODS:
        path, overrides = digits_classwise(method)
        metrics, original = run_at_start(path, method, cache_dir, overrides)
        rows[method] = {"method": method, **metrics}
    rows["original"] = {"method": "original", **original}
    columns = ["method", "forget_acc", "test_r_acc", "test_f_acc", "val_acc", "mia", "score"]
    QUALITY_TABLES.append("digits, forget digit 0 (start points):\n" + table(list(rows.values()), columns))
    return rows


@pytest.mark.parametrize("method", sorted(METHODS))
def test_digits_classwise_quality(method, digits_table):
    row, original = digits_table[method], digits_table["original"]
    assert row["test_r_acc"] >= original["test_r_acc"] - 5.0, "retained test accuracy within 5 points of the original's"
    if method in KEEPS_THE_CLASS:
        assert row["forget_acc"] >= 90.0, f"{method} is not expected to erase a class here"
    else:
        assert row["forget_acc"] <= 10.0, "forget accuracy far below the original's 100"
        assert row["test_f_acc"] <= 10.0, "the forgotten class is gone from the test set too"
        assert row["mia"] >= 90.0, "the forget set looks like non-members, as to the retrained model (100)"


@pytest.fixture(scope="module")
def mnist1d_table(cache_dir):
    rows = {}
    for method in METHODS:
        metrics, original = run_at_start(SPACES / f"mnist1d_{method}.yaml", method, cache_dir, [])
        rows[method] = {"method": method, **metrics}
    rows["original"] = {"method": "original", **original}
    rows["retrain (reference)"] = {"method": "retrain (reference)", **metrics_of_retrain(rows)}
    columns = ["method", "forget_acc", "test_acc", "mia", "test_avg_gap", "score"]
    QUALITY_TABLES.append("MNIST-1D, random 10 %, seed 0 (start points):\n" + table(list(rows.values()), columns))
    return rows


def metrics_of_retrain(rows: dict) -> dict:
    any_row = next(iter(rows.values()))
    return {k[len("retrain_"):]: v for k, v in any_row.items() if k.startswith("retrain_")}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_mnist1d_random_quality(method, mnist1d_table):
    row, original = mnist1d_table[method], mnist1d_table["original"]
    retrain = mnist1d_table["retrain (reference)"]
    assert row["test_acc"] >= original["test_acc"] - 6.0, "test accuracy not collapsed"
    if method in STAYS_ON_MNIST1D:
        assert row["forget_acc"] >= 99.0
    else:
        assert row["forget_acc"] < 100.0, "forget accuracy moves from 100 % ..."
        assert row["forget_acc"] >= retrain["forget_acc"] - 8.0, "... toward the retrain model's, not far below it"
