"""l1-sparse: fine-tune on the retain set with a decaying L1 penalty (Jia et al., NeurIPS 2023; docs/methods.md#l1_sparse).

L = CE + gamma_e * ||theta||_1 over all parameters, gamma_e = gamma * (1 - e/E), e = 0..E-1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..train import batches, make_optimizer, make_scheduler, train_epoch
from .base import Context, Method, UnlearnData
from .params import L1SparseParams


def l1_norm(model: nn.Module) -> torch.Tensor:
    return sum(p.abs().sum() for p in model.parameters())


class L1Sparse(Method):
    name = "l1_sparse"

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: L1SparseParams, ctx: Context) -> nn.Module:
        spec = hp.optim(hp.lr)
        optimizer = make_optimizer(model.parameters(), spec)
        scheduler = make_scheduler(optimizer, spec, hp.epochs)
        for e in range(hp.epochs):
            weight = hp.gamma * (1.0 - e / hp.epochs)

            def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, weight: float = weight) -> torch.Tensor:
                return F.cross_entropy(model(x), y) + weight * l1_norm(model)

            loss = train_epoch(model, batches(data.retain, hp.batch_size, ctx.generator, augment=data.augment), loss_fn, optimizer)
            if scheduler is not None:
                scheduler.step()
            if not ctx.report(e + 1, model, loss=loss, l1_weight=weight):
                break
        return model
