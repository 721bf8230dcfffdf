"""SalUn: random labelling restricted to salient weights (Fan et al., ICLR 2024; METHODS.md §3)."""

from __future__ import annotations

import dataclasses

from torch import nn

from ..hparams import hp
from ..train import fit, make_optimizer
from .base import Context, Method, UnlearnData
from .random_label import RandomLabelParams, relabelled_source
from .saliency import SaliencyMask


@dataclasses.dataclass(frozen=True)
class SalUnParams(RandomLabelParams):
    # SalUn's official default (`--batch_size 256`), also used for the saliency pass; AMUN's code uses 128.
    batch_size: int = hp(256, ge=1, help="mini-batch size (RL passes and the saliency pass)")
    lr: float = hp(0.013, gt=0.0, low=1e-3, high=5e-2, log=True, help="SGD learning rate")
    mask_ratio: float = hp(0.5, gt=0.0, le=1.0, low=0.1, high=0.9, help="fraction r of weights (by saliency) that may change")


class SalUn(Method):
    name = "salun"
    summary = "Random labelling that updates only the weights most salient to the forget loss."
    paper = "Fan et al., SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency (ICLR 2024)"
    Params = SalUnParams

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: SalUnParams, ctx: Context) -> nn.Module:
        mask = SaliencyMask(model, data.forget, hp.mask_ratio, hp.batch_size)
        ctx.extras["mask_density"] = mask.density
        optimizer = make_optimizer(model.parameters(), hp.optim(hp.lr))
        fit(
            model,
            relabelled_source(data, hp, ctx),
            hp.optim(hp.lr),
            epochs=hp.epochs,
            optimizer=optimizer,
            before_step=mask.mask_gradients,
            after_step=lambda: mask.restore_frozen(optimizer),
            on_epoch=ctx.epoch_hook(model),
        )
        return model
