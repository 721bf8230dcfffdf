"""Per-example LiRA AUC (docs/metrics.md#lira-auc, project version)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ray_unlearn.metrics.lira import lira_auc, lira_log_ratios


def _populations(n_models: int, n_examples: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    example_means = rng.normal(0.0, 3.0, n_examples)  # examples differ; the attack is per example
    unlearned = example_means + shift + rng.normal(size=(n_models, n_examples))
    retrained = example_means + rng.normal(size=(n_models, n_examples))
    return unlearned, retrained


@pytest.mark.parametrize("seed", range(3))
def test_identical_distributions_give_chance(seed):
    # 32 x 100 held-out pairs per side: the AUC's sd under the null is about
    # 0.007 if pairs were independent (they share each example's fit); 0.05 is wide
    unlearned, retrained = _populations(64, 100, shift=0.0, seed=seed)
    assert lira_auc(unlearned, retrained, seed=seed) == pytest.approx(0.5, abs=0.05)


def test_separated_populations_are_told_apart():
    unlearned, retrained = _populations(16, 50, shift=6.0, seed=0)
    assert lira_auc(unlearned, retrained) > 0.99


def test_a_one_sd_half_shift_matches_the_gaussian_auc():
    # equal variances: the likelihood ratio is monotone in φ, so the AUC is
    # P(X_u > X_r) = Φ(0.5 / √2) ≈ 0.638 (up to the fit's noise at 100 models per fit)
    unlearned, retrained = _populations(200, 50, shift=0.5, seed=1)
    expected = 0.5 * (1 + math.erf(0.5 / math.sqrt(2) / math.sqrt(2)))
    assert lira_auc(unlearned, retrained) == pytest.approx(expected, abs=0.03)


def test_swapping_the_populations_leaves_the_auc_unchanged():
    # AUC = P(Λ of a held-out unlearned pair > Λ of a held-out retrained pair);
    # swapping negates Λ and swaps the labels; each population's split depends
    # only on its size and the seed, so the held-out models are the same
    rng = np.random.RandomState(3)
    unlearned, retrained = rng.normal(0.3, 1.0, (20, 30)), rng.normal(0.0, 1.5, (24, 30))
    assert lira_auc(unlearned, retrained, seed=5) == pytest.approx(lira_auc(retrained, unlearned, seed=5), abs=1e-12)


def test_a_constant_population_stays_finite():
    rng = np.random.RandomState(4)
    unlearned, retrained = np.zeros((16, 10)), rng.normal(size=(16, 10))
    score_u, score_r = lira_log_ratios(unlearned, retrained)
    assert np.isfinite(score_u).all() and np.isfinite(score_r).all()
    assert lira_auc(unlearned, retrained) > 0.9


def test_held_out_halves_are_scored():
    score_u, score_r = lira_log_ratios(np.zeros((10, 3)) + np.arange(10)[:, None], np.ones((7, 3)) * np.arange(7)[:, None])
    assert score_u.shape == (5, 3) and score_r.shape == (4, 3)


def test_too_few_models_are_refused():
    with pytest.raises(ValueError, match="at least 4 models"):
        lira_auc(np.zeros((3, 2)), np.zeros((8, 2)))
