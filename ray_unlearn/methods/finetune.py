"""FT: fine-tune on the retain set only (docs/methods.md#finetune). The forget set is never read."""

from __future__ import annotations

from torch import nn

from ..train import batches, fit
from .base import Context, Method, UnlearnData
from .params import FineTuneParams


class FineTune(Method):
    name = "finetune"

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: FineTuneParams, ctx: Context) -> nn.Module:
        retain = data.retain
        fit(
            model,
            lambda: batches(retain, hp.batch_size, ctx.generator, augment=data.augment),
            hp.optim(hp.lr),
            epochs=hp.epochs,
            on_epoch=ctx.epoch_hook(model),
        )
        return model
