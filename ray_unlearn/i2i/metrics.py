"""I2I metrics (docs/metrics.md#image-to-image-metrics): reconstruction, divergence, audits. Plain PyTorch + scikit-learn.

Every output is f(τ(x)) in eval mode. Quality is measured on the masked
block (the part the model must invent); divergence and reconstruction error
are per-image L2 norms over the full image, as in the method's stopping rule.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import Splits
from ..train import predict_logits
from .data import Backdoor
from .models import center_mask, corrupt

PSNR_MSE_FLOOR = 1e-10  # caps PSNR at 100 dB for a perfect reconstruction


def reconstruct(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """f(τ(x)) in eval mode, float32, batch by batch (train.predict_logits is that loop)."""
    return predict_logits(model, corrupt(x)[0])


def reconstruction_errors(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-image ||f(τ(x)) - x||_2 over the full image."""
    return (reconstruct(model, x) - x).flatten(1).norm(dim=1)


def divergence(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> float:
    """Mean over x of ||f_θ(τ(x)) - f_ref(τ(x))||_2 (Div, docs/metrics.md#forget-divergence)."""
    return (reconstruct(model, x) - reconstruct(reference, x)).flatten(1).norm(dim=1).mean().item()


def masked_mse(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error over the masked block (all channels)."""
    mask = center_mask(x.shape, x.device).expand_as(x)
    return ((out - x) ** 2 * mask).flatten(1).sum(1) / mask[0].sum()


def psnr(mse: torch.Tensor, max_value: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB: 10 log10(max² / mse)."""
    return 10.0 * torch.log10(max_value**2 / mse.clamp_min(PSNR_MSE_FLOOR))


def constant_fill_psnr(x: torch.Tensor) -> float:
    """Mean masked-block PSNR of filling every block with the set's mean block pixel: what a
    model that learned nothing about the images reaches (digits validation: ~8.4 dB)."""
    mask = center_mask(x.shape, x.device).expand_as(x)
    fill = (x * mask).sum() / mask.sum()
    return psnr(masked_mse(torch.full_like(x, fill.item()), x)).mean().item()


def ssim(a: torch.Tensor, b: torch.Tensor, max_value: float = 1.0, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004) with a Gaussian window, valid convolution, channel mean.

    The window is 11 px as usual, shrunk to 5 px on tiny images (8x8 digits).
    """
    c, h, w = a.shape[1:]
    size = min(11, 2 * (min(h, w) // 4) + 1)
    g = torch.exp(-((torch.arange(size, dtype=a.dtype, device=a.device) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(c, 1, size, size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=c)

    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """||μa - μb||² + tr(Σa) + tr(Σb) - 2 tr((Σa^½ Σb Σa^½)^½), via symmetric eigendecompositions."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def frechet_encoder(original: nn.Module, outputs: torch.Tensor, real: torch.Tensor) -> float:
    """Fréchet distance between outputs and real images in the ORIGINAL I2I model's `embed` space.

    Not FID: no Inception network; the features are the original encoder's
    code of the full (unmasked) image, an encoder trained on τ(x) of this
    dataset only. With fewer images than feature dimensions (digits D_f:
    ~60 images, 64 dims) the covariances are rank-deficient and the value is
    biased upward; it compares runs on the same sets, not papers. Features of the
    digits classifier would be closer to FID but tie this package to the
    classification references (docs/metrics.md#frechet-encoder-distance).
    """
    return frechet_distance(embeddings(original, outputs), embeddings(original, real))


@torch.no_grad()
def embeddings(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """`model.embed(x)` in eval mode, batch by batch, as float64 numpy."""
    was_training = model.training
    model.eval()
    out = torch.cat([model.embed(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out.cpu().double().numpy()


def audit_features(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Per-image attack features from the model's output only: log error statistics and SSIM."""
    out = reconstruct(model, x)
    mask = center_mask(x.shape, x.device).expand_as(x)
    err = (out - x) ** 2
    hidden = masked_mse(out, x)
    visible = (err * ~mask).flatten(1).sum(1) / (~mask[0]).sum()
    peak = (err * mask).flatten(1).amax(1)
    feats = [hidden, visible, err.flatten(1).sum(1), peak]
    logs = [torch.log(f.clamp_min(PSNR_MSE_FLOOR)) for f in feats]
    return torch.stack([*logs, ssim(out, x)], 1).cpu().double().numpy()


def audit_auc(model: nn.Module, members: torch.Tensor, nonmembers: torch.Tensor, seed: int = 0, folds: int = 5) -> float:
    """Cross-validated AUC of a classifier telling the model's outputs on `members` from those on `nonmembers`.

    Balanced by subsampling the larger set; logistic regression on standardised
    `audit_features`; AUC of out-of-fold scores, so 0.5 means no separation
    (what a model that never saw `members` gives).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(seed)
    n = min(len(members), len(nonmembers))
    if n < folds:
        return float("nan")
    def pick(t: torch.Tensor) -> torch.Tensor:
        return t[torch.from_numpy(np.sort(rng.choice(len(t), n, replace=False))).to(t.device)]

    x = np.concatenate([audit_features(model, pick(members)), audit_features(model, pick(nonmembers))])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def ood_auroc(model: nn.Module, forget: torch.Tensor, heldout: torch.Tensor) -> float:
    """AUROC of reconstruction error separating D_f (positive) from held-out images.

    Below 0.5: D_f reconstructs better than unseen data (remembered); ≈0.5 for
    a retrain model under random forgetting. Compared with θ_u, never maximised.
    """
    from sklearn.metrics import roc_auc_score

    scores = torch.cat([reconstruction_errors(model, forget), reconstruction_errors(model, heldout)]).cpu().numpy()
    labels = np.concatenate([np.ones(len(forget)), np.zeros(len(heldout))])
    return float(roc_auc_score(labels, scores))


def backdoor_success(model: nn.Module, x: torch.Tensor, backdoor: Backdoor) -> float:
    """Share of triggered inputs whose masked-block output is nearer (L2) the checkerboard than the true content."""
    triggered = backdoor.add_trigger(x)
    out = reconstruct(model, triggered)
    mask = center_mask(x.shape, x.device).expand_as(x)
    board = backdoor.checkerboard(x.shape, x.device)
    to_board = ((out - board) * mask).flatten(1).norm(dim=1)
    to_truth = ((out - triggered) * mask).flatten(1).norm(dim=1)
    return (to_board < to_truth).float().mean().item()


def quality(model: nn.Module, x: torch.Tensor, prefix: str) -> dict[str, float]:
    """Masked-block MSE and PSNR, full-image SSIM, means over the set."""
    out = reconstruct(model, x)
    mse = masked_mse(out, x)
    return {f"{prefix}_mse": mse.mean().item(), f"{prefix}_psnr": psnr(mse).mean().item(), f"{prefix}_ssim": ssim(out, x).mean().item()}


def evaluate_i2i(
    model: nn.Module,
    splits: Splits,
    original: nn.Module,
    *,
    seed: int = 0,
    heldout: str = "test",
    backdoor: Backdoor | None = None,
    poisoned_idx: torch.Tensor | None = None,
) -> dict[str, float]:
    """All I2I metrics of `model` on `splits` (with D_f poisoned as the original was trained, if it was).

    `heldout` names the split that plays D_t ("val" while tuning, "test" when
    reporting); its metrics carry that prefix. `original` gives the feature
    space of the Fréchet distance and the reference of `*_divergence`; the
    retrain model's forget_divergence, for comparison, is this function
    applied to the retrain model. `forget_divergence` covers all of D_f, as
    the method's stopping rule does; forget quality and the membership audits
    (audit_auc, ood_auroc, forget_frechet_encoder) use the unpoisoned part of
    D_f only (`poisoned_idx`, train indices): a checkerboard image is not a
    sample of the data, and every model would tell it apart. For class-wise
    forgetting the audit's non-members are held-out images of the forgotten
    classes, so it measures membership, not class.
    """
    forget, retain, held = splits.forget.x, splits.retain.x, getattr(splits, heldout)
    clean = forget
    if poisoned_idx is not None and len(poisoned_idx):
        clean = splits.train.x[splits.forget_idx[~torch.isin(splits.forget_idx, poisoned_idx.to(splits.forget_idx.device))]]
    nonmembers = held.x
    if splits.forget_classes:
        nonmembers = held.x[torch.isin(held.y, torch.tensor(splits.forget_classes, device=held.y.device))]
    out = {**quality(model, retain, "retain"), **quality(model, clean, "forget"), **quality(model, held.x, heldout)}
    out["forget_divergence"] = divergence(model, original, forget)
    out["retain_divergence"] = divergence(model, original, retain)
    out["audit_auc"] = audit_auc(model, clean, nonmembers, seed)
    out["ood_auroc"] = ood_auroc(model, clean, held.x)
    out["forget_frechet_encoder"] = frechet_encoder(original, reconstruct(model, clean), clean)
    out[f"{heldout}_frechet_encoder"] = frechet_encoder(original, reconstruct(model, held.x), held.x)
    if backdoor is not None:
        out["backdoor_success"] = backdoor_success(model, held.x, backdoor)
    return {k: float(v) for k, v in out.items()}
