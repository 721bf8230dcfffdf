"""SCRUB: a student that moves away from its teacher on the forget set and stays close on
the retain set (Kurmanji et al., NeurIPS 2023; docs/methods.md#scrub).

d(x) = T^2 * KL(softmax(f_o/T) || softmax(f_s/T)). Epoch e = 1..E: if e <= msteps a
max pass over D_f minimising -mean d; then a min pass over D_r minimising gamma*CE + alpha*d.

Learning rate as the official loop (`sgda_adjust_learning_rate(epoch, ...)` at the start of
each epoch, repdistiller `helper/util.py`): epoch e runs both its passes at
lr * 0.1^(number of milestones m with e > m), so with milestones (3, 5, 9) epochs 4-5 run at
lr/10, 6-9 at lr/100, 10+ at lr/1000 (the CIFAR default of E = 3 never reaches one).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..train import batches, make_optimizer, train_epoch
from .base import Context, Method, UnlearnData
from .params import ScrubParams

LR_DECAY_RATE = 0.1  # official `lr_decay_rate`


def distill_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) at temperature T, batch mean."""
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1), reduction="batchmean", log_target=True) * t * t


class Scrub(Method):
    name = "scrub"

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: ScrubParams, ctx: Context) -> nn.Module:
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        t = hp.temperature
        optimizer = make_optimizer(model.parameters(), hp.optim(hp.lr))
        # stepped once per epoch (after both passes): epoch e runs at lr * 0.1^#{m : m < e}
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, sorted(hp.lr_milestones), gamma=LR_DECAY_RATE)

        def max_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                teacher_logits = teacher(x)
            return -distill_divergence(model(x), teacher_logits, t)

        def min_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            logits = model(x)
            loss = hp.gamma * F.cross_entropy(logits, y)
            if hp.alpha > 0:  # a zero-weighted term is not computed
                with torch.no_grad():
                    teacher_logits = teacher(x)
                loss = loss + hp.alpha * distill_divergence(logits, teacher_logits, t)
            return loss

        for epoch in range(1, hp.epochs + 1):
            logs = {}
            if epoch <= hp.msteps:
                logs["max_loss"] = train_epoch(model, batches(data.forget, hp.forget_batch_size, ctx.generator), max_loss, optimizer)
            logs["min_loss"] = train_epoch(
                model, batches(data.retain, hp.batch_size, ctx.generator, augment=data.augment), min_loss, optimizer
            )
            scheduler.step()
            if not ctx.report(epoch, model, **logs):
                break
        return model
