"""Per-example LiRA-style AUC between unlearned and retrained models (docs/metrics.md#lira-auc).

Project version of U-LiRA (Hayes et al.): for each forget example, one Gaussian
of φ (logit-scaled confidence) under the unlearned population and one under the
retrained population, fit on half of each population's models; every held-out
model then gets, per example, the log-likelihood ratio

    Λ = log N(φ; μ_u, σ_u) − log N(φ; μ_r, σ_r)

and the AUC is that of Λ for the held-out (model, example) pairs, unlearned
(label 1) against retrained (label 0): the probability that a held-out
unlearned pair scores higher than a held-out retrained pair, ties counted half.
0.5 = indistinguishable, 1 = perfectly told apart. Swapping the two populations
negates Λ and swaps the labels, so the AUC does not change (both populations get
the same seeded split when they have the same number of models). A value below
0.5 only comes from noise in the fit.
"""

from __future__ import annotations

import numpy as np

MIN_STD = 1e-3  # floor on each fitted σ, in φ units (logits): a constant population stays finite


def _split(n_models: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, held-out) model indices: a seeded permutation cut in half."""
    perm = np.random.default_rng(seed).permutation(n_models)
    return perm[: n_models // 2], perm[n_models // 2 :]


def _gaussian_log_pdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)


def lira_log_ratios(
    unlearned_phi: np.ndarray, retrained_phi: np.ndarray, seed: int = 0, min_std: float = MIN_STD
) -> tuple[np.ndarray, np.ndarray]:
    """Λ of the held-out unlearned and held-out retrained models, each (held-out models, examples)."""
    u = np.asarray(unlearned_phi, dtype=np.float64)
    r = np.asarray(retrained_phi, dtype=np.float64)
    if u.ndim != 2 or r.ndim != 2 or u.shape[1] != r.shape[1]:
        raise ValueError(
            f"unlearned_phi and retrained_phi must be (models, examples) with the same examples, "
            f"got {u.shape} and {r.shape}"
        )
    if min(u.shape[0], r.shape[0]) < 4:
        raise ValueError(f"need at least 4 models per population (2 to fit, 2 held out), got {u.shape[0]} and {r.shape[0]}")
    if min_std <= 0:
        raise ValueError(f"min_std must be > 0, got {min_std}")
    u_fit, u_held = _split(u.shape[0], seed)
    r_fit, r_held = _split(r.shape[0], seed)
    mean_u, std_u = u[u_fit].mean(0), np.maximum(u[u_fit].std(0, ddof=1), min_std)
    mean_r, std_r = r[r_fit].mean(0), np.maximum(r[r_fit].std(0, ddof=1), min_std)

    def log_ratio(phi: np.ndarray) -> np.ndarray:
        return _gaussian_log_pdf(phi, mean_u, std_u) - _gaussian_log_pdf(phi, mean_r, std_r)

    return log_ratio(u[u_held]), log_ratio(r[r_held])


def lira_auc(unlearned_phi: np.ndarray, retrained_phi: np.ndarray, seed: int = 0, min_std: float = MIN_STD) -> float:
    """AUC of Λ, held-out unlearned (model, example) pairs against held-out retrained ones."""
    from sklearn.metrics import roc_auc_score

    score_u, score_r = lira_log_ratios(unlearned_phi, retrained_phi, seed=seed, min_std=min_std)
    labels = np.concatenate([np.ones(score_u.size), np.zeros(score_r.size)])
    return float(roc_auc_score(labels, np.concatenate([score_u.ravel(), score_r.ravel()])))
