"""A continuous tuning signal beside the SVC MIA: how far the unlearned model's forget-set confidences
are from the retrain model's, as distributions (issue: the MIA-Efficacy is a discrete share, and
its member sampling moves it by more than the whole retrain-vs-original gap on small data).

Confidence is logit-scaled, phi = log p_y - log(1 - p_y) (the audit's statistic, docs/metrics.md#the-audit), so
memorised examples (p_y -> 1) are not squashed together. The distance is the 1-Wasserstein distance
between the empirical distributions of phi over the forget set under the two models: 0 when the
unlearned model is exactly as (un)sure about the forgotten data as a model that never saw it, in
the units of phi, and it does not pretend to match the retrain model example by example (which
another retrain seed would not either).
"""

from __future__ import annotations

import numpy as np
import torch

PHI_CLIP = 30.0  # |phi| beyond this is saturated float32 softmax, not information


def logit_confidence_of(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """phi = z_y - logsumexp_{k != y} z_k per row (the stable form of log p_y - log(1 - p_y))."""
    z = logits.double()
    zy = z.gather(1, labels[:, None]).squeeze(1)
    others = z.scatter(1, labels[:, None], float("-inf"))
    phi = zy - torch.logsumexp(others, dim=1)
    return phi.clamp(-PHI_CLIP, PHI_CLIP).cpu().numpy()


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between two empirical 1-D distributions (sizes may differ)."""
    from scipy.stats import wasserstein_distance

    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(wasserstein_distance(np.asarray(a, dtype=float), np.asarray(b, dtype=float)))


def confidence_distance(logits: torch.Tensor, retrain_phi: np.ndarray, labels: torch.Tensor) -> float:
    """W1 between the model's and the retrain model's forget-set phi distributions."""
    return wasserstein_1d(logit_confidence_of(logits, labels), retrain_phi)
