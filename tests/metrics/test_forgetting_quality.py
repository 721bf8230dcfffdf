"""Forgetting quality (NeurIPS 2023 challenge metric, docs/metrics.md#forgetting-quality).

Expected values are worked out by hand here, or were produced by the official
google-deepmind/unlearning_evaluation metric.py (run outside the repo).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from ray_unlearn.metrics.forgetting_quality import (
    DELTA,
    EPSILON_CAP,
    audit_scores,
    example_epsilons,
    final_score,
    forgetting_quality,
    logit_confidence,
)


def _eps(fpr: float, fnr: float) -> float:
    """The challenge's ε of one threshold with both rates in (0, 1)."""
    return max(0.0, math.log(1 - DELTA - fpr) - math.log(fnr), math.log(1 - DELTA - fnr) - math.log(fpr))


def _best_single_threshold_eps(pos: list[float], neg: list[float]) -> float:
    """Brute force over every cut "φ >= t -> positive" (t at each observed value)."""
    best = 0.0
    for t in sorted(set(pos) | set(neg)):
        fnr = sum(p < t for p in pos) / len(pos)
        fpr = sum(n >= t for n in neg) / len(neg)
        if fpr > 0 and fnr > 0 and fpr < 1 and fnr < 1:
            best = max(best, _eps(fpr, fnr))
    return best


def _column(values: list[float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)[:, None]


# --- logit-scaled confidence -------------------------------------------------------------


def test_logit_confidence_is_log_odds_of_the_true_class():
    logits = np.array([[[2.0, 0.0, 0.0], [1.0, 3.0, 2.0]]])  # (1 model, 2 examples, 3 classes)
    phi = logit_confidence(logits, np.array([0, 1]))
    assert phi.shape == (1, 2)
    assert phi[0, 0] == pytest.approx(2.0 - math.log(2.0))  # log(e^2 / (1 + 1))
    assert phi[0, 1] == pytest.approx(3.0 - math.log(math.e + math.e**2))


def test_logit_confidence_is_stable_for_huge_logits():
    phi = logit_confidence(np.array([[1000.0, 0.0, 0.0], [0.0, 1000.0, 0.0]]), np.array([0, 0]))
    assert phi == pytest.approx([1000.0 - math.log(2.0), -1000.0])


# --- per-example ε --------------------------------------------------------------------------


def test_identical_populations_have_zero_epsilon_and_full_quality():
    phi = np.random.RandomState(0).normal(size=(16, 20))
    eps = example_epsilons(phi, phi.copy())
    assert np.all(eps == 0.0)
    assert forgetting_quality(eps, 16) == 1.0


def test_populations_that_never_overlap_reach_the_cap_and_score_zero():
    rng = np.random.RandomState(1)
    unlearned, retrained = rng.normal(0.0, 1.0, (16, 5)), rng.normal(100.0, 1.0, (16, 5))
    out = audit_scores(unlearned, retrained)
    assert np.all(out["epsilons"] == EPSILON_CAP)
    assert out["forgetting_quality"] == 0.0  # the cap lies past the last bucket, ceil(ln 15) = 3
    assert out["n_models"] == 16


@pytest.mark.parametrize("spread", [0.0, 1e-3])
def test_a_nearly_constant_population_gets_the_cap_by_the_peaky_rule(spread):
    rng = np.random.RandomState(2)
    retrained = rng.normal(0.0, 1.0, (16, 3))  # range about 3
    unlearned = 0.1 + spread * rng.normal(size=(16, 3))  # range below 1 % of it, inside it
    assert np.all(example_epsilons(unlearned, retrained) == EPSILON_CAP)


def test_one_shared_constant_is_indistinguishable():
    # both populations the same point mass: every threshold is discarded (the
    # reference's assertion fails here); documented choice: ε = 0
    phi = np.full((8, 2), 3.0)
    assert np.all(example_epsilons(phi, phi.copy()) == 0.0)


def test_best_single_threshold_by_hand_with_four_models():
    # retrained has the larger median (10.25 vs 0.75), so it is "positive".
    # Any t in (1, 10] misses one retrained model (0.2) and lets one unlearned
    # model (12) through: FPR = FNR = 1/4, the best pair with both rates non-zero
    # at N = 4. No rule separates perfectly (0.2 sits among the unlearned values,
    # and an interval around {10, 10.5, 11} that keeps 0.2 keeps 0.5 and 1.0).
    retrained = [0.2, 10.0, 10.5, 11.0]
    unlearned = [0.0, 0.5, 1.0, 12.0]
    expected = math.log(0.75 - DELTA) - math.log(0.25)
    assert _best_single_threshold_eps(retrained, unlearned) == pytest.approx(expected)
    eps = example_epsilons(_column(unlearned), _column(retrained))
    assert eps[0] == pytest.approx(expected, rel=1e-12)


def test_double_threshold_beats_every_single_threshold_on_a_narrow_population_inside_a_wide_one():
    # narrow (median 0.15) is positive; the wide one has values on both sides.
    # Best single cut, t in (-0.5, 0]: FNR 1/4, FPR 2/4 -> ln((1/2 - δ) / (1/4)) ≈ ln 2.
    # The interval [-0.5, 0.3] holds 3 of 4 narrow values and one wide value
    # (0.1): FPR = FNR = 1/4 -> ln((3/4 - δ) / (1/4)) ≈ ln 3. Nothing separates
    # perfectly: 0.1 lies inside the narrow range.
    narrow = [-0.5, 0.0, 0.3, 0.5]
    wide = [-3.0, -2.0, 0.1, 3.0]
    single = _best_single_threshold_eps(narrow, wide)
    assert single == pytest.approx(math.log(0.5 - DELTA) - math.log(0.25))
    double = math.log(0.75 - DELTA) - math.log(0.25)
    assert double > single
    eps = example_epsilons(_column(wide), _column(narrow))
    assert eps[0] == pytest.approx(double, rel=1e-12)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        example_epsilons(np.zeros((4, 3)), np.zeros((5, 3)))


# --- buckets and score ------------------------------------------------------------------------

# N = 16: ceil(ln 15) = 3, six buckets [0, .5) [.5, 1) ... [2.5, 3) worth 1, 1/2, ..., 1/32
BUCKET_CASES = [
    (0.0, 1.0),
    (np.nextafter(0.5, 0.0), 1.0),
    (0.5, 0.5),  # a boundary belongs to the upper bucket
    (np.nextafter(0.5, 1.0), 0.5),
    (1.0, 0.25),
    (2.75, 1 / 32),
    (np.nextafter(3.0, 0.0), 1 / 32),
    (3.0, 0.0),  # past the last bucket
    (EPSILON_CAP, 0.0),
    (np.inf, 0.0),
]


@pytest.mark.parametrize("epsilon, points", BUCKET_CASES)
def test_bucket_points_at_and_around_the_edges(epsilon, points):
    assert forgetting_quality(np.array([epsilon]), n_models=16) == points


def test_bucket_count_follows_the_number_of_models():
    # N = 4: ceil(ln 3) = 2 -> four buckets; N = 512: ceil(ln 511) = 7 -> fourteen
    assert forgetting_quality(np.array([1.9]), 4) == 1 / 8
    assert forgetting_quality(np.array([2.0]), 4) == 0.0
    assert forgetting_quality(np.array([6.9]), 512) == 0.5**13
    assert forgetting_quality(np.array([7.0]), 512) == 0.0


def test_forgetting_quality_is_the_mean_over_examples():
    assert forgetting_quality(np.array([0.1, 0.7, 1.2, 60.0]), 16) == pytest.approx((1 + 0.5 + 0.25 + 0) / 4)


def test_final_score_by_hand():
    # 0.5 x (95 / 100) x (81 / 90)
    score = final_score(0.5, np.array([90.0, 100.0]), np.array([100.0, 100.0]), np.array([80.0, 82.0]), np.array([90.0, 90.0]))
    assert score == pytest.approx(0.4275)


# --- against the official code --------------------------------------------------------------

# F from the official metric.py on np.random.RandomState(0): unlearned then
# retrained, each .normal(size=(N, 40)); "shifted" adds 1 to the unlearned draw.
# (Both are exact multiples of 1 / (40 x 2^k); ours agreed on every example's ε
# to 1e-6 relative, the official code's rates being float32.)
OFFICIAL_F_SEED0 = {  # N: (same, shifted)
    16: (0.1734375, 0.1015625),
    32: (0.1734375, 0.06875),
    64: (0.1671875, 0.03828125),
    128: (0.1890625, 0.029296875),
}

# docs/metrics.md#the-ceiling: the official code on one Gaussian draw per N (seed unknown)
METHODS_F = {16: (0.19, 0.10), 32: (0.18, 0.06), 64: (0.21, 0.04), 128: (0.16, 0.03)}
# a single draw's F varies from seed to seed (sd about 0.01-0.025 same, 0.003-0.01
# shifted at 40 examples); the mean of 3 seeds is compared with that margin
TOLERANCE = {"same": 0.06, "shifted": 0.035}


def _populations(n_models: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    unlearned = rng.normal(size=(n_models, 40)) + shift
    return unlearned, rng.normal(size=(n_models, 40))


@functools.cache
def _quality(n_models: int, seed: int, shift: float) -> float:
    return audit_scores(*_populations(n_models, seed, shift))["forgetting_quality"]


@pytest.mark.parametrize("n_models", sorted(OFFICIAL_F_SEED0))
def test_matches_the_official_code_on_seeded_draws(n_models):
    for shift, expected in zip((0.0, 1.0), OFFICIAL_F_SEED0[n_models]):
        assert _quality(n_models, 0, shift) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n_models", sorted(METHODS_F))
def test_finite_n_figures_of_methods_md(n_models):
    for shift, kind, expected in zip((0.0, 1.0), ("same", "shifted"), METHODS_F[n_models]):
        scores = [_quality(n_models, seed, shift) for seed in range(3)]
        assert np.mean(scores) == pytest.approx(expected, abs=TOLERANCE[kind]), (kind, scores)
