"""GA: gradient ascent on the forget set only (docs/methods.md#gradient_ascent).

The loss -CE is unbounded, so the gradient norm is clipped at 10 and a
non-finite loss aborts the run (train_epoch raises FloatingPointError).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Context, Method, UnlearnData
from .params import GradientAscentParams

GRAD_CLIP_NORM = 10.0  # project choice (docs/methods.md#gradient_ascent)


def negative_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -F.cross_entropy(model(x), y)


class GradientAscent(Method):
    name = "gradient_ascent"

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: GradientAscentParams, ctx: Context) -> nn.Module:
        ctx.fit(model, data.forget, hp, loss_fn=negative_ce, grad_clip=GRAD_CLIP_NORM)
        return model
