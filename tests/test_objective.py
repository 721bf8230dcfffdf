"""The score a sweep maximises, on hand-computed metric dicts (independent of the code's own gaps)."""

from __future__ import annotations

import pytest

from ray_unlearn.config import ObjectiveConfig, parse_experiment
from ray_unlearn.errors import ConfigError
from ray_unlearn.objective import WORST_SCORE, describe, score

from .conftest import digits_config

METRICS = {"val_acc": 90.0, "mia_gap": 4.0, "mia_asr_gap": 7.0, "ua_gap": 3.0, "avg_gap": 2.5, "forget_conf_distance": 1.5}


def objective(**kw) -> ObjectiveConfig:
    return ObjectiveConfig(retained="val_acc", **kw)


def test_combined_score_subtracts_the_weighted_gaps():
    assert score(METRICS, objective(mia_weight=2.0)) == pytest.approx(90.0 - 2 * 4.0)
    assert score(METRICS, objective(mia_weight=1.0, forget_weight=0.5)) == pytest.approx(90.0 - 4.0 - 1.5)


def test_objective_mia_asr_uses_the_asr_gap_instead_of_efficacy():
    assert score(METRICS, objective(mia="asr")) == pytest.approx(90.0 - 7.0)
    assert "mia_asr_gap" in describe(objective(mia="asr"))


def test_confidence_weight_subtracts_the_confidence_distance():
    assert score(METRICS, objective(confidence_weight=2.0)) == pytest.approx(90.0 - 4.0 - 3.0)
    assert "forget_conf_distance" in describe(objective(confidence_weight=2.0))


def test_avg_gap_kind_is_minus_avg_gap_and_non_finite_is_worst():
    assert score(METRICS, ObjectiveConfig(kind="avg_gap", retained="val_acc")) == -2.5
    assert score({**METRICS, "mia_gap": float("nan")}, objective()) == WORST_SCORE


def test_objective_mia_must_be_one_the_task_has():
    with pytest.raises(ConfigError, match="objective.mia: 'lira' is not allowed for task classification; choose one of efficacy, asr"):
        parse_experiment(digits_config(objective={"mia": "lira"}))
    i2i = digits_config(task="i2i", model={"arch": "autoencoder"}, method="i2i_kr", objective={"mia": "asr"})
    with pytest.raises(ConfigError, match="objective.mia: 'asr' is not allowed for task i2i"):
        parse_experiment(i2i)


def test_a_trial_reports_mia_asr_and_the_confidence_distance_and_scores_on_the_chosen_mia(digits_refs):
    import torch

    from ray_unlearn.trial import run_trial

    exp = parse_experiment(digits_config(method="finetune", fixed={"epochs": 1}, objective={"mia": "asr", "confidence_weight": 0.5}))
    m = run_trial(exp, digits_refs, {}, seed=0, device=torch.device("cpu")).metrics
    for key in ("mia_asr", "test_mia_asr", "retrain_mia_asr", "forget_conf_distance"):
        assert key in m and m[key] == m[key], key
    assert m["mia_asr_gap"] == pytest.approx(abs(m["mia_asr"] - m["retrain_mia_asr"]))
    assert m["score"] == pytest.approx(m["val_acc"] - m["mia_asr_gap"] - 0.5 * m["forget_conf_distance"])
    assert 0.0 <= m["mia_asr"] <= 100.0 and m["forget_conf_distance"] >= 0.0
