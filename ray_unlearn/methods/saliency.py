"""SalUn's weight-saliency mask (docs/methods.md#salun), shared by SalUn and AMUN+SalUn.

(1) In eval mode, g = sum over forget batches of the gradient of the batch-mean
-CE; saliency s = |g|. (2) One global ranking over every scalar parameter
(biases and BN affine included): m = 1 on the top fraction r, else 0.
(3) During unlearning, gradients are multiplied by m, and after each step the
m = 0 weights are reset to the original values and their momentum zeroed, so
weight decay cannot move them either (current official code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import TensorSet
from ..train import batches


class SaliencyMask:
    def __init__(self, model: nn.Module, forget: TensorSet, ratio: float, batch_size: int):
        was_training = model.training
        model.eval()
        params = [p for p in model.parameters() if p.requires_grad]
        grads = [torch.zeros_like(p) for p in params]
        for x, y in batches(forget, batch_size, shuffle=False):
            loss = -F.cross_entropy(model(x), y)
            for g, d in zip(grads, torch.autograd.grad(loss, params)):
                g += d
        model.train(was_training)
        saliency = torch.cat([g.abs().flatten() for g in grads])
        keep = int(round(ratio * saliency.numel()))
        flat = torch.zeros_like(saliency, dtype=torch.bool)
        if keep > 0:
            flat[torch.topk(saliency, keep, sorted=False).indices] = True
        self.masks: list[torch.Tensor] = []
        start = 0
        for p in params:
            self.masks.append(flat[start : start + p.numel()].view_as(p).to(p.dtype))
            start += p.numel()
        self.params = params
        self.originals = [p.detach().clone() for p in params]
        self.frozen = [m == 0 for m in self.masks]  # bool masks, built once: restoring is a select, no sync

    @property
    def density(self) -> float:
        kept = sum(float(m.sum()) for m in self.masks)
        return kept / sum(m.numel() for m in self.masks)

    def mask_gradients(self) -> None:
        for p, m in zip(self.params, self.masks):
            if p.grad is not None:
                p.grad.mul_(m)

    def restore_frozen(self, optimizer: torch.optim.Optimizer) -> None:
        """Reset the m = 0 weights to the original and zero their momentum."""
        with torch.no_grad():
            for p, frozen, p0 in zip(self.params, self.frozen, self.originals):
                torch.where(frozen, p0, p, out=p)
                state = optimizer.state.get(p)
                if state and "momentum_buffer" in state and state["momentum_buffer"] is not None:
                    state["momentum_buffer"].masked_fill_(frozen, 0)
