"""I2I references: trained through train.fit, cached by content, reloaded bit-identical."""

from __future__ import annotations

import torch

from ray_unlearn.cache import Store
from ray_unlearn.config import DataConfig, ForgetConfig
from ray_unlearn.data import load_splits
from ray_unlearn.i2i import I2IRecipe, prepare_i2i

from .common import state_equal


def test_references_are_cached_and_reloaded_without_training(tmp_path):
    torch.set_num_threads(1)
    splits = load_splits(DataConfig(dataset="digits", forget=ForgetConfig(kind="random", fraction=0.1)))
    trained = []
    first = prepare_i2i(splits, I2IRecipe(epochs=1), store=Store(tmp_path), progress=lambda *a: trained.append(a[0]))
    assert trained == ["original", "retrain"]
    again = prepare_i2i(splits, I2IRecipe(epochs=1), store=Store(tmp_path), progress=lambda *a: trained.append(a[0]))
    assert trained == ["original", "retrain"], "second call loads from the store"
    assert state_equal(first.original, again.original) and state_equal(first.retrain, again.retrain)
    assert not state_equal(first.original, first.retrain)
    assert torch.equal(first.splits.train.x, again.splits.train.x) and torch.equal(first.poisoned_idx, again.poisoned_idx)
    assert again.seconds == first.seconds and first.seconds["retrain"] > 0
    other = prepare_i2i(splits, I2IRecipe(epochs=1, seed=1), store=Store(tmp_path), progress=lambda *a: trained.append(a[0]))
    assert trained[2:] == ["original", "retrain"] and not state_equal(other.original, first.original)
