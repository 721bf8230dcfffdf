"""I2I metrics: formulas on known inputs, and the audits on models with known membership."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ray_unlearn.i2i import (
    I2IRecipe,
    audit_auc,
    backdoor_success,
    evaluate_i2i,
    frechet_distance,
    frechet_encoder,
    psnr,
    ssim,
    train_autoencoder,
)
from ray_unlearn.i2i.metrics import masked_mse, reconstruct


def test_ssim_of_an_image_with_itself_is_one_and_drops_with_noise():
    gen = torch.Generator().manual_seed(0)
    for shape in [(4, 1, 8, 8), (2, 3, 32, 32)]:
        x = torch.rand(shape, generator=gen)
        assert torch.allclose(ssim(x, x), torch.ones(shape[0]), atol=1e-5)
        noisy = (x + 0.3 * torch.randn(shape, generator=gen)).clamp(0, 1)
        assert (ssim(x, noisy) < 0.9).all()


def test_psnr_is_10_log10_of_peak_squared_over_masked_mse():
    x = torch.zeros(2, 1, 8, 8)
    out = x.clone()
    out[:, :, 2:6, 2:6] = 0.1  # masked-block error 0.1 everywhere -> MSE 0.01 -> 20 dB
    out[:, :, 0, 0] = 1.0  # errors outside the masked block do not count
    assert torch.allclose(masked_mse(out, x), torch.full((2,), 0.01))
    assert torch.allclose(psnr(masked_mse(out, x)), torch.full((2,), 20.0))
    assert math.isclose(psnr(torch.tensor([0.25]), max_value=2.0).item(), 10 * math.log10(4 / 0.25), rel_tol=1e-6)


def test_frechet_distance_is_zero_for_identical_sets_and_the_squared_shift_for_a_translated_set():
    feats = np.random.RandomState(0).randn(200, 16)
    assert abs(frechet_distance(feats, feats)) < 1e-6
    shift = np.full(16, 0.5)
    assert math.isclose(frechet_distance(feats, feats + shift), float(shift @ shift), rel_tol=1e-6)
    assert frechet_distance(feats, 3 * feats) > 10


def test_frechet_encoder_is_zero_for_the_same_images_in_the_original_feature_space(refs):
    x = refs.splits.test.x
    assert abs(frechet_encoder(refs.original, x, x)) < 1e-6
    assert frechet_encoder(refs.original, reconstruct(refs.original, x), x) > 0


@pytest.fixture(scope="module")
def memoriser(refs):
    """An autoencoder overtrained on the forget set only: it rebuilds those images, and little else."""
    clean = refs.splits.forget.subset(torch.nonzero(~torch.isin(refs.splits.forget_idx, refs.poisoned_idx)).flatten())
    return clean, train_autoencoder(clean, (1, 8, 8), I2IRecipe(epochs=300, batch_size=16, seed=1), torch.device("cpu"))


def test_audit_separates_a_memorising_models_outputs_on_its_training_images_from_unseen_ones(refs, memoriser):
    members, model = memoriser
    unseen_zeros = refs.splits.val.x[refs.splits.val.y == 0]
    unseen_zeros = torch.cat([unseen_zeros, refs.splits.test.x[refs.splits.test.y == 0]])
    assert audit_auc(model, members.x, unseen_zeros, seed=0) > 0.9


def test_audit_is_near_chance_for_a_model_that_saw_neither_set(refs):
    # two disjoint sets of images the retrain model never saw, from one distribution
    aucs = [audit_auc(refs.retrain, refs.splits.val.x, refs.splits.test.x, seed=s) for s in range(3)]
    assert abs(np.mean(aucs) - 0.5) < 0.1, aucs


def test_the_poisoned_original_regenerates_the_backdoor_and_the_retrain_model_does_not(refs):
    test = refs.splits.test.x
    assert backdoor_success(refs.original, test, refs.backdoor) > 0.8, "docs/metrics.md#backdoor-success: else the audit is void"
    assert backdoor_success(refs.retrain, test, refs.backdoor) < 0.05


def test_evaluate_i2i_names_its_metrics_and_measures_divergence_against_the_original(refs):
    m = refs.evaluate(refs.original)
    for prefix in ("retain", "forget", "test"):
        assert {f"{prefix}_mse", f"{prefix}_psnr", f"{prefix}_ssim"} <= m.keys()
    assert {"forget_divergence", "retain_divergence", "audit_auc", "ood_auroc", "forget_frechet_encoder",
            "test_frechet_encoder", "backdoor_success"} <= m.keys()
    assert all(math.isfinite(v) for v in m.values())
    assert m["forget_divergence"] == 0 and m["retain_divergence"] == 0
    r = refs.evaluate(refs.retrain)
    assert r["forget_divergence"] > 3 * r["retain_divergence"], "digit 0 is new to the retrain model"
    assert r["ood_auroc"] > 0.85 > m["ood_auroc"], "forgotten class is OOD for retrain, not for the original"
    val = evaluate_i2i(refs.original, refs.splits, refs.original, heldout="val")
    assert "val_psnr" in val and "test_psnr" not in val
