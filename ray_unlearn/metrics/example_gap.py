"""Forgetting per example: how far each forget example's confidence in a model is from where retrained
models put it (docs/metrics.md#example_gap).

MIA-Efficacy asks whether the forget set as a whole looks like non-members, against one retrained model;
the audit (docs/metrics.md#the-audit) shows that a model can pass it while each example is still told
apart from retrained models. This is a tuning signal of the audit's kind, cheap enough for every trial:
a population of N retrained models (trained once per sweep and cached) gives, per forget example i, the
mean mu_i and spread sigma_i of its logit-scaled confidence phi = log p_y - log(1 - p_y) (as LiRA models
each example's out-distribution as a Gaussian). A model's `example_gap` is the mean over forget examples
of |phi_i - mu_i| / sigma_i: about 0.8 (E|Z| of a standard normal) for one more retrained model, larger
the more the model still remembers individual examples (or over-forgets them).

Deviation from LiRA's per-example variances: with the few models a sweep can afford, some examples'
spreads come out near zero and would dominate the mean, so sigma_i is floored at half the median spread.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SIGMA_FLOOR_SHARE = 0.5  # sigma_i >= this share of the median sigma


@dataclasses.dataclass(frozen=True)
class ExampleReference:
    """Per forget example, the mean and (floored) spread of phi over a retrained population."""

    mean: np.ndarray
    std: np.ndarray
    models: int

    @classmethod
    def from_phi(cls, phi: np.ndarray) -> "ExampleReference":
        """From phi of the population: models x forget examples (at least two models)."""
        phi = np.asarray(phi, dtype=np.float64)
        if phi.ndim != 2 or phi.shape[0] < 2:
            raise ValueError(f"need phi of at least two models x examples, got shape {phi.shape}")
        std = phi.std(axis=0, ddof=1)
        floor = SIGMA_FLOOR_SHARE * float(np.median(std)) if std.size else 0.0
        return cls(mean=phi.mean(axis=0), std=np.maximum(std, max(floor, 1e-6)), models=phi.shape[0])


def example_gap(phi: np.ndarray, reference: ExampleReference) -> float:
    """Mean over forget examples of |phi_i - mu_i| / sigma_i: 0 at the retrained population's mean
    confidence for every example, larger the further the model is from it, one example at a time."""
    phi = np.asarray(phi, dtype=np.float64)
    if phi.shape != reference.mean.shape:
        raise ValueError(f"phi has shape {phi.shape}, the reference {reference.mean.shape}")
    return float(np.mean(np.abs(phi - reference.mean) / reference.std))
