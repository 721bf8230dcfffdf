"""Forgetting quality of the NeurIPS 2023 Machine Unlearning challenge (docs/metrics.md#forgetting-quality).

A reimplementation of `metric.py` in google-deepmind/unlearning_evaluation
(numpy only, vectorised over thresholds). Inputs are logit-scaled confidences
φ of the forget examples, shape (models, examples): one array for N unlearned
models (the method run N times from θ_o) and one for N retrained models.

Per example, every threshold rule of the reference is an attack that says
"unlearned" or "retrained"; its false-positive and false-negative rates give an
ε lower bound, and the example's ε is the best over all rules. Since the rates
are counts over N models, ε depends only on the pair of counts, so it is read
from an (N + 1) x (N + 1) table instead of recomputed per threshold.

Where this differs from the reference (all are cases the reference crashes on
or computes in lower precision):
- rates and ε in float64 (the reference uses float32 rates, so its ε agree with
  ours to about 1e-6 relative);
- an example whose every threshold is discarded (e.g. both populations one and
  the same constant) gets ε = 0, where the reference's assertion fails;
- the released code's `assert thr_eps` on a numpy array raises for any example
  with more than one surviving threshold; ours has no such assertion;
- the single-threshold grid is numpy's float64 linspace; the reference's
  `torch.linspace` returns float32 points, up to about 1e-7 away. A φ that
  falls between the two versions of a grid point is counted on the other side
  (with continuous φ this practically never happens, and never matters for ε
  unless that threshold is the best one).
"""

from __future__ import annotations

import numpy as np

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100  # grid density of both threshold families
DOUBLE_THRESHOLD_BUFFER = 2.0  # how far the double thresholds roam around the peaky population
PEAKY_RANGE_RATIO = 0.01  # narrower range below this share of the wider one -> ε = cap
BUCKET_WIDTH = 0.5


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """φ = log p_y − log(1 − p_y), computed as z_y − logsumexp_{k≠y} z_k.

    `logits` is (..., examples, K), e.g. (models, examples, K); `labels` is
    (examples,) or broadcastable to logits.shape[:-1]. Returns logits.shape[:-1]
    in float64. The reference adds 1e-45 inside both logs (so its φ saturates at
    about ±103.6); this form has no such clamp, the two agree below that.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 2 or z.shape[-1] < 2:
        raise ValueError(f"logits must be (..., examples, K) with K >= 2, got shape {z.shape}")
    y = np.broadcast_to(np.asarray(labels, dtype=np.int64), z.shape[:-1])
    if y.size and (y.min() < 0 or y.max() >= z.shape[-1]):
        raise ValueError(f"labels must be in [0, {z.shape[-1]}), got [{y.min()}, {y.max()}]")
    z_y = np.take_along_axis(z, y[..., None], axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, y[..., None], -np.inf, axis=-1)
    top = others.max(axis=-1, keepdims=True)
    lse_others = top[..., 0] + np.log(np.exp(others - top).sum(axis=-1))
    return z_y - lse_others


def _epsilon_table(n_models: int, delta: float) -> np.ndarray:
    """ε of a threshold indexed by [false-positive count, false-negative count].

    inf where both are 0 (perfect separation), nan (discarded) where exactly one
    is 0 or where neither log is defined; otherwise the larger of the two bounds,
    clipped at 0.
    """
    rate = np.arange(n_models + 1) / n_models
    fpr, fnr = rate[:, None], rate[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(1.0 - delta - fpr) - np.log(fnr)
        b = np.log(1.0 - delta - fnr) - np.log(fpr)
    a = np.where(np.isnan(a), -np.inf, a)
    b = np.where(np.isnan(b), -np.inf, b)
    best = np.maximum(a, b)
    table = np.where(np.isneginf(best), np.nan, np.maximum(best, 0.0))
    table[(fpr * fnr == 0) & ~((fpr == 0) & (fnr == 0))] = np.nan
    table[0, 0] = np.inf
    return table


def _single_threshold_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, false negatives) of the rule "φ >= t -> positive" for the
    grid of t over the pooled range, 100 per unit. pos and neg are sorted."""
    lo, hi = min(pos[0], neg[0]), max(pos[-1], neg[-1])
    thresholds = np.linspace(lo, hi, int(np.ceil((hi - lo) * THRESHOLDS_PER_UNIT)))
    false_neg = np.searchsorted(pos, thresholds, side="left")  # pos < t
    false_pos = len(neg) - np.searchsorted(neg, thresholds, side="left")  # neg >= t
    return false_pos, false_neg


def _double_threshold_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, false negatives) of "l <= φ <= r -> the peakier population".

    As the reference: the peakier population is the one with the smaller range
    (the median-negative one on a tie); r runs over [min + width − 2, max + 2] of
    that population (width = its range, 100 per unit), and for each r, l over
    [r − width − 2, r − width + 2] in 400 steps. pos and neg are sorted.
    """
    pos_range, neg_range = pos[-1] - pos[0], neg[-1] - neg[0]
    peaky, wide = (neg, pos) if pos_range >= neg_range else (pos, neg)
    width = min(pos_range, neg_range)
    buffer = DOUBLE_THRESHOLD_BUFFER
    lo = peaky[0] + width - buffer
    hi = peaky[-1] + buffer
    right = np.linspace(lo, hi, num=int(np.ceil((hi - lo) * THRESHOLDS_PER_UNIT)))
    n_left = int(np.ceil(2 * buffer * THRESHOLDS_PER_UNIT))
    left = np.linspace(right - width - buffer, right - width + buffer, num=n_left, axis=1).copy()  # C order: faster searchsorted

    def inside(values: np.ndarray) -> np.ndarray:
        at_most_r = np.searchsorted(values, right, side="right")[:, None]
        below_l = np.searchsorted(values, left, side="left")
        return np.maximum(at_most_r - below_l, 0).ravel()

    return inside(wide), len(peaky) - inside(peaky)


def _example_epsilon(pos: np.ndarray, neg: np.ndarray, table: np.ndarray, cap: float) -> float:
    pos, neg = np.sort(pos), np.sort(neg)
    ranges = (pos[-1] - pos[0], neg[-1] - neg[0])
    if max(ranges) > 0 and min(ranges) / max(ranges) < PEAKY_RANGE_RATIO:
        return cap  # one population (nearly) constant: the reference's "peaky" rule
    fp_s, fn_s = _single_threshold_counts(pos, neg)
    fp_d, fn_d = _double_threshold_counts(pos, neg)
    eps = np.concatenate([table[fp_s, fn_s], table[fp_d, fn_d]])
    eps = eps[~np.isnan(eps)]
    return float(min(eps.max(), cap)) if eps.size else 0.0


def _check_populations(unlearned: np.ndarray, retrained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrained, dtype=np.float64)
    if u.ndim != 2 or u.shape != r.shape:
        raise ValueError(
            f"unlearned and retrained confidences must both be (models, examples) of one shape, "
            f"got {u.shape} and {r.shape}"
        )
    if u.shape[0] < 2:
        raise ValueError(f"need at least 2 models per population, got {u.shape[0]}")
    if not (np.isfinite(u).all() and np.isfinite(r).all()):
        raise ValueError("confidences must be finite")
    return u, r


def example_epsilons(
    unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA, cap: float = EPSILON_CAP
) -> np.ndarray:
    """Per forget example ε, shape (examples,), in [0, cap].

    `unlearned` and `retrained` are φ, (models, examples). "Positive" = the
    population with the larger median φ (the unlearned one on a tie).
    """
    u, r = _check_populations(unlearned, retrained)
    retrain_is_positive = np.median(r, axis=0) > np.median(u, axis=0)
    pos = np.where(retrain_is_positive, r, u)
    neg = np.where(retrain_is_positive, u, r)
    table = _epsilon_table(u.shape[0], delta)
    return np.array([_example_epsilon(pos[:, j], neg[:, j], table, cap) for j in range(u.shape[1])])


def bucket_points(epsilons: np.ndarray, n_models: int) -> np.ndarray:
    """Points per example: ε in [0, 0.5) -> 1, [0.5, 1) -> 1/2, [1, 1.5) -> 1/4, ...

    Buckets of width 0.5 run up to ceil(ln(n_models − 1)); an ε at or past that
    edge (or inf / nan) scores 0. A boundary value belongs to the upper bucket.
    """
    if n_models < 2:
        raise ValueError(f"n_models must be >= 2, got {n_models}")
    eps = np.asarray(epsilons, dtype=np.float64)
    n_buckets = int(round(np.ceil(np.log(n_models - 1)) / BUCKET_WIDTH))
    with np.errstate(invalid="ignore", over="ignore"):
        bucket = np.floor(np.nan_to_num(eps, nan=np.inf, posinf=np.inf) / BUCKET_WIDTH)
    bucket = np.maximum(bucket, 0.0)
    scored = bucket < n_buckets
    return np.where(scored, 0.5 ** np.where(scored, bucket, 0.0), 0.0)


def forgetting_quality(epsilons: np.ndarray, n_models: int) -> float:
    """F = mean bucket points over the forget examples, in [0, 1].

    n_models is N, the number of models in each population (the reference uses
    the unlearned population's count).
    """
    eps = np.asarray(epsilons, dtype=np.float64)
    if eps.ndim != 1 or eps.size == 0:
        raise ValueError(f"epsilons must be a non-empty 1-D array, got shape {eps.shape}")
    return float(bucket_points(eps, n_models).mean())


def final_score(
    quality: float,
    ra_unlearned: np.ndarray,
    ra_retrained: np.ndarray,
    ta_unlearned: np.ndarray,
    ta_retrained: np.ndarray,
) -> float:
    """F x mean RA_u / mean RA_r x mean TA_u / mean TA_r; accuracies per model."""
    ratio_ra = np.mean(ra_unlearned) / np.mean(ra_retrained)
    ratio_ta = np.mean(ta_unlearned) / np.mean(ta_retrained)
    return float(quality * ratio_ra * ratio_ta)


def audit_scores(
    unlearned_phi: np.ndarray,
    retrained_phi: np.ndarray,
    delta: float = DELTA,
    cap: float = EPSILON_CAP,
) -> dict:
    """{"forgetting_quality": F, "epsilons": per-example ε, "n_models": N}."""
    eps = example_epsilons(unlearned_phi, retrained_phi, delta=delta, cap=cap)
    n_models = int(np.shape(unlearned_phi)[0])
    return {"forgetting_quality": forgetting_quality(eps, n_models), "epsilons": eps, "n_models": n_models}
