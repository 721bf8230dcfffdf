"""FT: fine-tune on the retain set only (docs/methods.md#finetune). The forget set is never read."""

from __future__ import annotations

from torch import nn

from .base import Context, Method, UnlearnData
from .params import FineTuneParams


class FineTune(Method):
    name = "finetune"

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: FineTuneParams, ctx: Context) -> nn.Module:
        ctx.fit(model, data.retain, hp, augment=data.augment)
        return model
