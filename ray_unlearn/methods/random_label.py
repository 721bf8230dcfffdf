"""RL: fine-tune on the forget set with random labels, and on the retain set (METHODS.md §3).

`sequential` (SalUn's CIFAR loop): per epoch a pass over D_f with labels drawn
uniformly over all K classes (the true one may come up), then a pass over D_r.
`mixed` (AMUN's code): shuffled D_r u relabelled D_f. `exclude_true` draws
labels different from the true one. Labels are drawn once per run.
"""

from __future__ import annotations

import itertools
from typing import Callable

import torch
from torch import nn

from ..data.base import TensorSet
from ..train import batches, fit
from .base import Context, Method, UnlearnData
from .params import RandomLabelParams


def random_labels(y: torch.Tensor, num_classes: int, exclude_true: bool, generator: torch.Generator) -> torch.Tensor:
    if exclude_true:
        shift = torch.randint(1, num_classes, y.shape, generator=generator).to(y.device)
        return (y + shift) % num_classes
    return torch.randint(0, num_classes, y.shape, generator=generator).to(y.device)


def relabelled_source(data: UnlearnData, hp: RandomLabelParams, ctx: Context) -> Callable:
    """Batches of one RL epoch, as the mode says."""
    forget = TensorSet(data.forget.x, random_labels(data.forget.y, data.num_classes, hp.exclude_true, ctx.generator))
    retain = data.retain
    if hp.mode == "mixed":
        both = retain.concat(forget)
        mask = torch.arange(len(both), device=both.x.device) < len(retain)
        return lambda: batches(both, hp.batch_size, ctx.generator, augment=data.augment, augment_mask=mask)
    return lambda: itertools.chain(
        batches(forget, hp.batch_size, ctx.generator),
        batches(retain, hp.batch_size, ctx.generator, augment=data.augment),
    )


class RandomLabel(Method):
    name = "random_label"
    summary = "Fine-tune on the forget set with random labels, interleaved with the retain set."
    paper = "Golatkar et al. (CVPR 2020) baseline; SalUn (Fan et al., ICLR 2024) and AMUN loops"
    Params = RandomLabelParams

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: RandomLabelParams, ctx: Context) -> nn.Module:
        fit(model, relabelled_source(data, hp, ctx), hp.optim(hp.lr), epochs=hp.epochs, on_epoch=ctx.epoch_hook(model))
        return model
