"""Quality of every classification method at its shipped starting point (the `start:` values of its
search_spaces/ YAML, else the declared defaults of docs/methods.md), on digits class-wise and MNIST-1D random 10 %.

What a faithful implementation must show is stated per method, with the reason where a method is
expected NOT to do something (e.g. AMUN does not erase a class: it keeps the forget set's labels).

One test per (setting, method): a method that fails its figure fails alone. The margins are wide
enough that float differences between CPUs of this kind cannot cross them: the start points come
from `bench/start_points.py`, which requires the same figures on several data/model seeds with a
margin (a seeded CPU run differs between CPUs about as much as between seeds). The tables are
printed at the end of the pytest run.
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
# The expectations below were read off `python bench/start_points.py search_spaces/<setting>_*.yaml
# --current --seeds 0,1,2` (seed 0 is what this test runs): each holds on all three seeds with a
# margin, so a CPU whose float rounding differs (about as much as another seed) does not cross it.

# Digits, class-wise. Fine-tuning keeps predicting a class it no longer sees; the AMUN family trains
# on the forget set with its true labels; l1_sparse erases digit 0 only at points that collapse on
# other seeds (a 16-candidate, 3-seed sweep found no robust one), so its robust start keeps it.
KEEPS_THE_CLASS = {"finetune", "amun", "amun_salun", "amun_no_retain", "l1_sparse"}

# MNIST-1D, random 10 % (retrain: forget accuracy ~92, test Avg Gap of the untouched original ~5.5-6.0).
# Read off `python bench/start_points.py search_spaces/mnist1d_*.yaml --current --seeds 0,1,2` at the shipped
# starts (the robust score's, `python bench/quality.py --write`). Test Avg Gap at least 1 below doing
# nothing's (5.47 / 5.95 / 5.46 on seeds 0-2): amun 1.50 / 2.49 / 2.52, amun_salun 1.93 / 4.08 / 1.77,
# l1_sparse 1.77 / 1.82 / 1.97, mixunlearn 2.90 / 1.49 / 1.62, mixunlearn_agnostic 2.11 / 2.52 / 1.33,
# neggrad_plus 2.26 / 1.48 / 1.14, random_label 2.61 / 1.23 / 3.83, salun 2.29 / 2.05 / 3.43, retrain 0.59 / 1.16 /
# 1.11 (amun_no_retain 4.58 / 4.53 / 4.33 and finetune 4.66 / 4.58 / 4.60: within 1 of doing nothing, not here).
CLOSES_THE_GAP = {"amun", "amun_salun", "l1_sparse", "mixunlearn", "mixunlearn_agnostic", "neggrad_plus", "random_label",
                  "salun", "retrain"}
# Forget accuracy moves from 100 % to 98 % or less (3 seeds: 88.3 to 97.2; amun_salun reaches 99.2 on seed 1
# and amun_no_retain 98.6 to 99.2, so they are not here):
MOVES_FORGET_ACC = {"amun", "l1_sparse", "mixunlearn", "mixunlearn_agnostic", "neggrad_plus", "random_label", "salun",
                    "retrain"}
# Forget accuracy stays near 100 %, as FT and GA leave CIFAR-10's at > 99 % in the SalUn table
# (UA 0.63 / 0.69): the robust points of these three change little here (3 seeds: 99.72 to 100).
STAYS_ON_MNIST1D = {"finetune", "gradient_ascent", "scrub"}

ROWS: dict[str, dict[str, dict]] = {"digits": {}, "mnist1d": {}}
TITLES = {"digits": "digits, forget digit 0 (start points)", "mnist1d": "MNIST-1D, random 10 %, seed 0 (start points)"}
COLUMNS = {
    "digits": ["method", "forget_acc", "test_r_acc", "test_f_acc", "val_acc", "mia", "score"],
    "mnist1d": ["method", "forget_acc", "test_acc", "mia", "test_avg_gap", "score"],
}


@pytest.fixture(scope="module", autouse=True)
def print_tables():
    yield
    for setting, rows in ROWS.items():
        if rows:
            QUALITY_TABLES.append(f"{TITLES[setting]}:\n" + table(list(rows.values()), COLUMNS[setting]))


def run_at_start(setting: str, path: Path, method: str, cache_dir: Path, overrides: list[str]) -> tuple[dict, dict, dict]:
    """(metrics at the start point, original's metrics, retrain's metrics); the row goes to the table."""
    torch.set_num_threads(1)
    exp = load_experiment(path, overrides)
    refs, _ = prepare(exp, Store(cache_dir), torch.device("cpu"))
    result = run_trial(exp, refs, exp.start_point(), seed=0, device=torch.device("cpu"), memo=Store(cache_dir).memo(refs.key))
    ROWS[setting][method] = {"method": method, **result.metrics}
    ROWS[setting].setdefault("original", {"method": "original", **refs.original_metrics})
    ROWS[setting].setdefault("retrain (reference)", {"method": "retrain (reference)", **refs.retrain_metrics})
    assert result.status == "ok", result.message
    return result.metrics, refs.original_metrics, refs.retrain_metrics


def digits_classwise(method: str) -> tuple[Path, list[str]]:
    own = SPACES / f"digits_{method}.yaml"
    if own.exists() and load_experiment(own).data.forget.kind == "class":
        return own, []
    return SPACES / "digits_finetune.yaml", [f"method={method}", "fixed={}", "search={}"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_digits_classwise_quality(method, cache_dir):
    path, overrides = digits_classwise(method)
    row, original, _ = run_at_start("digits", path, method, cache_dir, overrides)
    assert row["test_r_acc"] >= original["test_r_acc"] - 8.0, "retained test accuracy within 8 points of the original's"
    if method in KEEPS_THE_CLASS:
        assert row["forget_acc"] >= 90.0, f"{method} is not expected to erase a class here"
    else:
        assert row["forget_acc"] <= 15.0, "forget accuracy far below the original's 100"
        assert row["test_f_acc"] <= 15.0, "the forgotten class is gone from the test set too"
        assert row["mia"] >= 85.0, "the forget set looks like non-members, as to the retrained model (100)"


def original_test_gap(original: dict, retrain: dict) -> float:
    """Test Avg Gap of doing nothing, by hand: mean |difference| over UA, RA, TA, MIA (SalUn protocol)."""
    ua = (100.0 - original["forget_acc"], 100.0 - retrain["forget_acc"])
    pairs = [ua, (original["retain_acc"], retrain["retain_acc"]), (original["test_acc"], retrain["test_acc"]),
             (original["test_mia"], retrain["test_mia"])]
    return sum(abs(a - b) for a, b in pairs) / 4


@pytest.mark.parametrize("method", sorted(METHODS))
def test_mnist1d_random_quality(method, cache_dir):
    row, original, retrain = run_at_start("mnist1d", SPACES / f"mnist1d_{method}.yaml", method, cache_dir, [])
    assert row["test_acc"] >= original["test_acc"] - 8.0, "test accuracy not collapsed"
    assert row["forget_acc"] >= retrain["forget_acc"] - 10.0, "forget accuracy not pushed far below the retrain model's"
    if method in CLOSES_THE_GAP:
        assert row["test_avg_gap"] <= original_test_gap(original, retrain) - 1.0, "closer to retrain than doing nothing"
    if method in MOVES_FORGET_ACC:
        assert row["forget_acc"] <= 98.0, "forget accuracy moves from 100 % toward the retrain model's"
    if method in STAYS_ON_MNIST1D:
        assert row["forget_acc"] >= 97.0, "no real movement expected at this scale"
