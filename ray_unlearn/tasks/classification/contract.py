"""The small real problem `ray_unlearn.testing.check_method` runs a classification method on: a digits
SmallCNN trained briefly, class 0 to forget (CPU, made once per process)."""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn

from ...methods.base import UnlearnData


@functools.cache
def _trained() -> tuple[dict[str, torch.Tensor], UnlearnData, tuple[int, ...]]:
    from ...config import DataConfig, ForgetConfig
    from ...data import load_splits
    from ...models import build_model
    from ...train import OptimSpec, batches, fit

    torch.manual_seed(0)
    splits = load_splits(DataConfig(dataset="digits", forget=ForgetConfig(kind="class", classes=(0,))))
    model = build_model("small_cnn", splits.info.input_shape, splits.info.num_classes)
    gen = torch.Generator().manual_seed(0)
    fit(model, lambda: batches(splits.train, 64, gen), OptimSpec(lr=0.05, schedule="cosine"), epochs=10)
    data = UnlearnData(forget=splits.forget, retain=splits.retain, num_classes=splits.info.num_classes,
                       input_range=splits.info.input_range)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, data, tuple(splits.info.input_shape)


def problem() -> tuple[Callable[[], nn.Module], UnlearnData]:
    """(a factory of fresh copies of the trained original, the data a method reads)."""
    from ...models import build_model

    state, data, shape = _trained()

    def original() -> nn.Module:
        model = build_model("small_cnn", shape, data.num_classes)
        model.load_state_dict(state)
        return model.eval()

    return original, data
