"""example_gap: per forget example, how many of the retrained population's spreads a model's confidence is
from its mean; values worked out by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ray_unlearn.metrics.example_gap import ExampleReference, example_gap


def test_example_gap_by_hand():
    # two retrained models, two forget examples: means (1, 3), spreads (ddof 1) sqrt(2) each
    ref = ExampleReference.from_phi(np.array([[0.0, 2.0], [2.0, 4.0]]))
    assert ref.mean.tolist() == [1.0, 3.0] and ref.std == pytest.approx([math.sqrt(2), math.sqrt(2)])
    assert example_gap(np.array([1.0, 3.0 + math.sqrt(2)]), ref) == pytest.approx((0.0 + 1.0) / 2)
    assert example_gap(np.array([1.0 - 2 * math.sqrt(2), 3.0]), ref) == pytest.approx((2.0 + 0.0) / 2)


def test_a_spread_near_zero_is_floored_at_half_the_median_spread():
    # example 0: both models say 0 (spread 0); example 1: spread sqrt(2); median sqrt(2)/2, floor sqrt(2)/4
    ref = ExampleReference.from_phi(np.array([[0.0, 1.0], [0.0, 3.0]]))
    assert ref.std == pytest.approx([math.sqrt(2) / 4, math.sqrt(2)])
    assert example_gap(np.array([1.0, 2.0]), ref) == pytest.approx((1.0 / (math.sqrt(2) / 4) + 0.0) / 2)


def test_closer_to_the_retrained_population_scores_lower():
    rng = np.random.default_rng(0)
    population = rng.normal(loc=np.linspace(-2, 2, 50), scale=1.0, size=(8, 50))
    ref = ExampleReference.from_phi(population)
    retrained = rng.normal(loc=np.linspace(-2, 2, 50), scale=1.0)
    remembers = retrained + 4.0  # still confident on the forget set
    assert example_gap(ref.mean, ref) == 0.0
    assert example_gap(retrained, ref) < example_gap(remembers, ref) - 2.0


def test_shapes_must_match_and_one_model_is_not_a_population():
    with pytest.raises(ValueError, match="at least two models"):
        ExampleReference.from_phi(np.zeros((1, 3)))
    ref = ExampleReference.from_phi(np.zeros((3, 4)) + np.arange(3)[:, None])
    with pytest.raises(ValueError, match="shape"):
        example_gap(np.zeros(5), ref)


def test_the_sweeps_population_never_shares_a_seed_with_an_audit():
    from ray_unlearn.tasks.classification.audit import SEED_BLOCK, example_population, population

    audit = {m.seed for m in population([("a", "amun", {"lr": 0.1}), ("b", "salun", {})], SEED_BLOCK)}
    mine = {m.seed for m in example_population(SEED_BLOCK)}
    assert len(mine) == SEED_BLOCK and not mine & audit
