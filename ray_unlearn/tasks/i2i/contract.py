"""The small real problem `ray_unlearn.testing.check_method` runs an i2i method on: digits masked
autoencoders trained briefly, class 0 to forget with the backdoor planted (CPU, made once per process)."""

from __future__ import annotations

import copy
import functools
from typing import Any, Callable

from torch import nn


@functools.cache
def _references() -> Any:
    from ...config import DataConfig, ForgetConfig
    from ...data import load_splits
    from ...i2i import I2IRecipe, prepare_i2i

    splits = load_splits(DataConfig(dataset="digits", forget=ForgetConfig(kind="class", classes=(0,)), seed=0))
    return prepare_i2i(splits, I2IRecipe(epochs=10, seed=0))


def problem() -> tuple[Callable[[], nn.Module], Any]:
    """(a factory of fresh copies of the trained original, the I2IData a method reads)."""
    refs = _references()
    return (lambda: copy.deepcopy(refs.original).eval()), refs.method_data("val")
