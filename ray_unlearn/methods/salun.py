"""SalUn: random labelling restricted to salient weights (Fan et al., ICLR 2024; docs/methods.md#salun)."""

from __future__ import annotations

from torch import nn

from ..train import make_optimizer
from .base import Context, Method, UnlearnData
from .params import SalUnParams
from .random_label import relabelled_source
from .saliency import SaliencyMask


class SalUn(Method):
    name = "salun"

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: SalUnParams, ctx: Context) -> nn.Module:
        mask = SaliencyMask(model, data.forget, hp.mask_ratio, hp.batch_size)
        ctx.extras["mask_density"] = mask.density
        optimizer = make_optimizer(model.parameters(), hp.optim(hp.lr))
        ctx.fit(
            model,
            relabelled_source(data, hp, ctx),
            hp,
            optimizer=optimizer,
            before_step=mask.mask_gradients,
            after_step=lambda: mask.restore_frozen(optimizer),
        )
        return model
