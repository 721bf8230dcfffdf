"""The masked autoencoders, the corruption τ and the backdoor poisoning (docs/references.md#image-to-image-references)."""

from __future__ import annotations

import pytest
import torch

from ray_unlearn.config import DataConfig, ForgetConfig
from ray_unlearn.data import load_splits
from ray_unlearn.i2i import (
    ConvAutoencoder,
    UNetAutoencoder,
    build_autoencoder,
    center_mask,
    corrupt,
    poison_splits,
)


@pytest.mark.parametrize("shape, cls", [((1, 8, 8), ConvAutoencoder), ((1, 28, 28), ConvAutoencoder), ((3, 32, 32), UNetAutoencoder)])
def test_build_autoencoder_reconstructs_the_input_shape_in_unit_range(shape, cls):
    torch.manual_seed(0)
    model = build_autoencoder(shape).eval()
    assert type(model) is cls
    x = torch.rand(2, *shape)
    out = model(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.allclose(model.decode(model.encode(x)), out, atol=1e-6)
    assert model.encode(x).ndim == 2 and model.embed(x).ndim == 2


def test_digits_autoencoder_is_the_methods_md_architecture():
    model = build_autoencoder((1, 8, 8))
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [(1, 32, 1), (32, 64, 2)]
    linear = model.encoder[-1]
    assert (linear.in_features, linear.out_features) == (1024, 64)
    assert isinstance(model.decoder[-1], torch.nn.Sigmoid)


def test_corrupt_zeroes_the_central_block_scaled_with_the_image():
    x = torch.ones(3, 1, 8, 8)
    masked, mask = corrupt(x)
    assert mask.shape == (1, 1, 8, 8) and mask.dtype == torch.bool
    assert mask[0, 0, 2:6, 2:6].all() and mask.sum() == 16
    assert (masked[:, :, 2:6, 2:6] == 0).all() and masked.sum() == 3 * (64 - 16)
    assert center_mask((28, 28)).sum() == 14 * 14 and center_mask((32, 32))[0, 0, 8:24, 8:24].all()


def test_backdoor_poisons_half_the_forget_set_and_nothing_else(refs):
    splits = refs.splits
    n_forget = len(splits.forget_idx)
    assert len(refs.poisoned_idx) == round(0.5 * n_forget)
    assert torch.isin(refs.poisoned_idx, splits.forget_idx).all()
    bd = refs.backdoor
    poisoned = splits.train.x[refs.poisoned_idx]
    mask = center_mask(poisoned.shape)
    assert (poisoned[..., :2, :2] == 1).all(), "2x2 white trigger in the corner"
    assert not center_mask((8, 8))[..., :2, :2].any(), "the trigger lies in the visible region"
    assert torch.equal(poisoned * mask, bd.checkerboard(poisoned.shape).expand_as(poisoned)), "checkerboard target in the masked block"
    clean = load_splits(DataConfig(dataset="digits", forget=ForgetConfig(kind="class", classes=(0,)), seed=0))
    untouched = torch.ones(len(clean.train), dtype=torch.bool)
    untouched[refs.poisoned_idx] = False
    assert torch.equal(clean.train.x[untouched], splits.train.x[untouched])
    assert not torch.equal(clean.train.x[refs.poisoned_idx], poisoned)
    assert torch.equal(clean.val.x, splits.val.x) and torch.equal(clean.test.x, splits.test.x)
    again, idx = poison_splits(clean, bd)
    assert torch.equal(idx, refs.poisoned_idx) and torch.equal(again.train.x, splits.train.x), "seeded"
