"""MNIST through torchvision's real loader (small idx files): the 28x28 model end to end."""

from __future__ import annotations

import math

import torch

from ray_unlearn.config import DataConfig, ForgetConfig
from ray_unlearn.data import load_splits
from ray_unlearn.i2i import (
    ConvAutoencoder,
    I2IKRParams,
    I2IRecipe,
    prepare_i2i,
)
from ray_unlearn.methods.base import Context
from ray_unlearn.registry import get_method
from tests.idx_files import write_mnist


def test_mnist_idx_files_train_unlearn_and_evaluate(tmp_path):
    torch.set_num_threads(1)
    root = write_mnist(tmp_path, n_train=200, n_test=60)
    splits = load_splits(DataConfig(dataset="mnist", root=str(root), forget=ForgetConfig(kind="random", fraction=0.1)))
    refs = prepare_i2i(splits, I2IRecipe(epochs=1))
    assert isinstance(refs.original, ConvAutoencoder) and refs.splits.train.x.shape[1:] == (1, 28, 28)
    assert (refs.splits.train.x[refs.poisoned_idx][..., :3, :3] == 1).all(), "trigger scaled to 28 px: 3x3"
    ctx = Context(seed=0)
    model = get_method("i2i_kr").run(refs.original, refs.method_data("val"), I2IKRParams(max_steps=10, retain_epochs=1), ctx)
    metrics = refs.evaluate(model, heldout="test")
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert ctx.extras["threshold_reached"] + ctx.extras["t_max_reached"] == 1.0
