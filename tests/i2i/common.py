"""Helpers shared by the I2I tests."""

from __future__ import annotations

import torch
from torch import nn

from ray_unlearn.hparams import make_params
from ray_unlearn.i2i import I2IData, I2IReferences
from ray_unlearn.i2i.catalog import CATALOG
from ray_unlearn.methods.base import Context

I2I_METHODS = {name: entry.load() for name, entry in CATALOG.items()}


def quick_params(name: str, **changes):
    """The method's declared quick settings (small budgets) plus `changes`."""
    entry = CATALOG[name]
    return make_params(entry.Params, {**entry.quick, **changes})


def run_method(name: str, refs: I2IReferences, data: I2IData, seed: int = 0, ctx: Context | None = None, **changes):
    torch.set_num_threads(1)
    ctx = ctx or Context(seed=seed)
    model = I2I_METHODS[name]().run(refs.original, data, quick_params(name, **changes), ctx)
    return model, ctx


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def with_nan(x: torch.Tensor) -> torch.Tensor:
    return torch.full_like(x, float("nan"))
