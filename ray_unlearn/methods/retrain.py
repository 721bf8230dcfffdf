"""Retrain from scratch on the retain set: exact unlearning, the reference every method is scored against.

As a method it is a baseline of cost: how close does a retrain with a given budget
(epochs, lr) come to the full-recipe retrain model? Defaults are the digits recipe
of docs/references.md#recipes (CIFAR-10: 200 epochs, lr 0.1, step decay every 40).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Context, Method, UnlearnData
from .params import RetrainParams


def reinitialise(model: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()


class Retrain(Method):
    name = "retrain"

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: RetrainParams, ctx: Context) -> nn.Module:
        reinitialise(model, ctx.seed)
        ctx.fit(model, data.retain, hp, augment=data.augment, spec=hp.optim(hp.lr, schedule="cosine"))
        return model
