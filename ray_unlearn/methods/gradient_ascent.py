"""GA: gradient ascent on the forget set only (METHODS.md §3).

The loss -CE is unbounded, so the gradient norm is clipped at 10 and a
non-finite loss aborts the run (train_epoch raises FloatingPointError).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..hparams import hp
from ..train import batches, fit
from .base import Context, Method, SGDParams, UnlearnData

GRAD_CLIP_NORM = 10.0  # project choice (METHODS.md §3)


@dataclasses.dataclass(frozen=True)
class GradientAscentParams(SGDParams):
    lr: float = hp(1e-4, gt=0.0, low=1e-6, high=1e-3, log=True, help="SGD learning rate")
    epochs: int = hp(5, ge=1, low=1, high=10, help="ascent passes over the forget set")


def negative_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -F.cross_entropy(model(x), y)


class GradientAscent(Method):
    name = "gradient_ascent"
    summary = "Maximise the loss on the forget set (minimise -CE), nothing else."
    paper = "Thudi et al., Unrolling SGD (EuroS&P 2022); Jia et al., Unlearn-Sparse (NeurIPS 2023) settings"
    Params = GradientAscentParams
    uses_retain = False

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: GradientAscentParams, ctx: Context) -> nn.Module:
        forget = data.forget
        fit(
            model,
            lambda: batches(forget, hp.batch_size, ctx.generator),
            hp.optim(hp.lr),
            epochs=hp.epochs,
            loss_fn=negative_ce,
            grad_clip=GRAD_CLIP_NORM,
            on_epoch=ctx.epoch_hook(model),
        )
        return model
