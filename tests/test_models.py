"""Models and the training loop's building blocks."""

from __future__ import annotations

import pytest
import torch

from ray_unlearn.data.base import TensorSet
from ray_unlearn.models import ARCHS, build_model
from ray_unlearn.train import augment_batch, batches


@pytest.mark.parametrize(
    "arch,shape,mix_shape",
    [
        ("small_cnn", (1, 8, 8), (32, 4, 4)),
        ("small_cnn", (1, 28, 28), (32, 14, 14)),
        ("mlp", (1, 28, 28), (256,)),
        ("resnet18", (1, 28, 28), (256, 7, 7)),
        ("resnet18", (3, 32, 32), (256, 8, 8)),
        ("cnn1d", (1, 40), (32, 20)),
    ],
)
def test_models_take_their_inputs_and_expose_the_mix_layer(arch, shape, mix_shape):
    model = build_model(arch, shape, 10).eval()
    x = torch.rand(2, *shape)
    assert model(x).shape == (2, 10)
    assert tuple(model.mix_features(x).shape[1:]) == mix_shape


def test_every_arch_is_registered_with_a_builder():
    assert set(ARCHS) == {"small_cnn", "mlp", "resnet18", "cnn1d"}


def test_crop_flip_augmentation_keeps_shape_and_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 32, 32)
    out = augment_batch(x, "crop_flip", g)
    assert out.shape == x.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out, x)
    # every output is a padded shift of its input, possibly mirrored: its non-zero pixels come from the input
    for i in range(4):
        values = set(x[i].flatten().tolist()) | {0.0}
        assert set(out[i].flatten().tolist()) <= values


def test_batches_cover_the_set_once_per_pass_and_mask_limits_augmentation():
    data = TensorSet(torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 4, 4).clone(), torch.arange(10))
    seen = torch.cat([y for _, y in batches(data, 3, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))
    mask = torch.arange(10) < 5
    for x, y in batches(data, 10, torch.Generator().manual_seed(0), augment="crop_flip", augment_mask=mask):
        untouched = ~mask[y]
        assert torch.equal(x[untouched], data.x[y[untouched]]), "rows outside the mask are never augmented"
