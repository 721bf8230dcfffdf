"""NegGrad+: descend on the retain set while ascending on the forget set (docs/methods.md#neggrad_plus).

Per step one D_r batch and the next cycled D_f batch;
L = beta * CE(D_r) - (1 - beta) * CE(D_f); an epoch is one pass over D_r.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import TensorSet
from ..train import batches
from .base import Context, Method, UnlearnData
from .params import NegGradPlusParams


def cycle(data: TensorSet, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches, reshuffled at every pass."""
    while True:
        yield from batches(data, batch_size, generator)


class NegGradPlus(Method):
    name = "neggrad_plus"

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: NegGradPlusParams, ctx: Context) -> nn.Module:
        # a separate stream for the forget batches, so the retain order matches fine-tuning's
        forget_batches = cycle(data.forget, hp.batch_size, torch.Generator().manual_seed(ctx.seed + 1))

        def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            loss = hp.beta * F.cross_entropy(model(x), y)
            if hp.beta < 1.0:  # a zero-weighted term is not computed (its BN statistics would still move)
                xf, yf = next(forget_batches)
                loss = loss - (1.0 - hp.beta) * F.cross_entropy(model(xf), yf)
            return loss

        ctx.fit(model, data.retain, hp, augment=data.augment, loss_fn=loss_fn)
        return model
