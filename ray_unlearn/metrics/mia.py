"""Membership-inference features and MIA-Efficacy (docs/metrics.md#mia-efficacy).

Features are computed here and only here: confidence p(y|x), prediction
entropy, and cross-entropy loss, from one eval-mode forward pass.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import TensorSet
from ..train import predict_logits

FEATURES = ("confidence", "entropy", "loss")


def mia_features(model: nn.Module, data: TensorSet, kind: str = "confidence") -> np.ndarray:
    """Per-sample attack feature, shape (N, 1)."""
    logits = predict_logits(model, data.x)
    log_p = F.log_softmax(logits, dim=1)
    if kind == "confidence":
        feat = log_p.gather(1, data.y[:, None]).exp()
    elif kind == "entropy":
        feat = -(log_p.exp() * log_p).sum(1, keepdim=True)
    elif kind == "loss":
        feat = -log_p.gather(1, data.y[:, None])
    else:
        raise ValueError(f"unknown MIA feature {kind!r}; allowed: {', '.join(FEATURES)}")
    return feat.cpu().double().numpy()


def mia_efficacy(
    model: nn.Module,
    retain: TensorSet,
    nonmembers: TensorSet,
    forget: TensorSet,
    seed: int,
    feature: str = "confidence",
) -> float:
    """100 x share of the forget set an SVC attack calls non-member.

    The attack (SalUn / Unlearn-Sparse code): `SVC(C=3, gamma="auto", rbf)` fit
    on members = |nonmembers| random retain samples (label 1) against the
    non-members (label 0), on the true-class probability.
    """
    from sklearn.svm import SVC

    if len(forget) == 0 or len(nonmembers) == 0:
        return float("nan")
    rng = np.random.RandomState(seed)
    n = min(len(nonmembers), len(retain))
    members = retain.subset(torch.from_numpy(np.sort(rng.choice(len(retain), n, replace=False))))
    x_train = np.concatenate([mia_features(model, members, feature), mia_features(model, nonmembers, feature)])
    y_train = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    attack = SVC(C=3, gamma="auto", kernel="rbf")
    attack.fit(x_train, y_train)
    predicted_member = attack.predict(mia_features(model, forget, feature))
    return float(100.0 * (1.0 - predicted_member.mean()))
