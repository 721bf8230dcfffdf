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


def test_example_weight_subtracts_example_gap_for_either_kind():
    m = {**METRICS, "example_gap": 1.2}
    assert score(m, ObjectiveConfig(retained="val_acc", example_weight=2.0, population=8)) == pytest.approx(90.0 - 4.0 - 2.4)
    assert score(m, ObjectiveConfig(retained="val_acc", kind="avg_gap", example_weight=0.5, population=8)) == pytest.approx(-2.5 - 0.6)
    assert "- 0.5 * example_gap" in describe(ObjectiveConfig(retained="val_acc", kind="avg_gap", example_weight=0.5, population=8))


def test_a_per_example_term_needs_a_population_and_a_task_that_has_one():
    with pytest.raises(ConfigError, match="objective.population: needs at least 4 retrained models .*example_weight is set"):
        parse_experiment(digits_config(objective={"example_weight": 1.0}))
    with pytest.raises(ConfigError, match="objective.population: needs at least 4"):
        parse_experiment(digits_config(objective={"population": 2}))
    i2i = digits_config(task="i2i", model={"arch": "autoencoder"}, method="i2i_kr", objective={"population": 8})
    with pytest.raises(ConfigError, match="objective.population: task i2i has no per-example reference"):
        parse_experiment(i2i)


def test_a_trial_with_a_population_reports_example_gap_against_it_and_scores_on_it(cache_dir):
    """The population is the retrain recipe on 4 more model seeds; example_gap is recomputed here by hand from
    the trial's own forget-set logits and the population's statistics."""
    import dataclasses

    import numpy as np
    import torch

    from ray_unlearn.cache import Store
    from ray_unlearn.metrics.confidence import logit_confidence_of
    from ray_unlearn.references import prepare
    from ray_unlearn.trial import run_trial

    raw = digits_config(method="finetune", fixed={"epochs": 2}, train={"epochs": 20, "lr": 0.05, "batch_size": 64},
                        data={"dataset": "digits", "forget": {"kind": "random", "fraction": 0.1}, "seed": 0},
                        objective={"example_weight": 0.5, "population": 4})
    exp = parse_experiment(raw)
    refs, trained = prepare(exp, Store(cache_dir), torch.device("cpu"))
    ref = refs.example_reference
    assert ref is not None and ref.models == 4 and ref.mean.shape == (len(refs.splits.forget_idx),)
    again, trained_again = prepare(exp, Store(cache_dir), torch.device("cpu"))
    assert not trained_again and np.array_equal(again.example_reference.mean, ref.mean), "the population is cached"
    result = run_trial(exp, refs, {}, seed=0, device=torch.device("cpu"))
    m = result.metrics
    model = result.model.eval()
    with torch.no_grad():
        phi = logit_confidence_of(model(refs.splits.forget.x), refs.splits.forget.y)
    by_hand = float(np.mean(np.abs(phi - ref.mean) / ref.std))
    assert m["example_gap"] == pytest.approx(by_hand, rel=1e-6)
    assert m["score"] == pytest.approx(m["val_acc"] - m["mia_gap"] - 0.5 * m["example_gap"])
    no_population = dataclasses.replace(refs, example_reference=None)
    plain = parse_experiment({**raw, "objective": {}})
    assert "example_gap" not in run_trial(plain, no_population, {}, seed=0, device=torch.device("cpu")).metrics


def test_a_weight_is_refused_where_the_task_reports_no_metric_for_it():
    i2i = digits_config(task="i2i", model={"arch": "autoencoder"}, method="i2i_kr", objective={"confidence_weight": 1.0})
    with pytest.raises(ConfigError, match="objective.confidence_weight: task i2i has no metric this weight applies to; "
                                          "its weights: mia_weight, forget_weight"):
        parse_experiment(i2i)
    assert parse_experiment(digits_config(objective={"confidence_weight": 1.0})).objective.confidence_weight == 1.0


def test_every_metric_is_ranked_the_way_its_task_declares():
    from ray_unlearn.config import METRIC_DIRECTIONS

    assert METRIC_DIRECTIONS["backdoor_success"] == "min", "`best --metric backdoor_success` ranks the least backdoored first"
    assert METRIC_DIRECTIONS["example_gap"] == "min" and METRIC_DIRECTIONS["val_psnr"] == "max"
