"""Digits I2I references shared by the I2I tests: trained once per session, few epochs.

Class-wise forgetting of digit 0 (the strong-signal setting, docs/references.md#forget-kinds),
with the backdoor audit planted in half of D_f. 25 epochs instead of 100 keep
the session fast; the original still learns the backdoor (> 80 %). They are stored in the
session's reference cache, so a sweep of the same data and recipe (test_sweep.py) loads them.
"""

from __future__ import annotations

import pytest
import torch

from ray_unlearn.cache import Store
from ray_unlearn.config import DataConfig, ForgetConfig
from ray_unlearn.data import load_splits
from ray_unlearn.i2i import I2IRecipe, I2IReferences, prepare_i2i

EPOCHS = 25


@pytest.fixture(scope="session")
def refs(cache_dir) -> I2IReferences:
    torch.set_num_threads(1)
    splits = load_splits(DataConfig(dataset="digits", forget=ForgetConfig(kind="class", classes=(0,)), seed=0))
    return prepare_i2i(splits, I2IRecipe(epochs=EPOCHS, seed=0), store=Store(cache_dir))


@pytest.fixture(scope="session")
def data(refs):
    """What a trial hands a method: D_f, D_r and the divergence scale measured on validation."""
    return refs.method_data("val")
