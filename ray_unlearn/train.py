"""The one training and evaluation loop everything uses.

Reference training, every method and every metric go through these few
functions, so speed work (device-resident batches, bf16 autocast and
channels_last on CUDA) happens in one place. Batches are index slices of
tensors already on the device: no DataLoader, no worker processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .data.base import TensorSet

logger = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
EpochCallback = Callable[[int, dict], bool | None]  # return False to stop early


@dataclasses.dataclass(frozen=True)
class OptimSpec:
    """Optimiser and learning-rate schedule of one training phase."""

    lr: float
    optimizer: str = "sgd"  # sgd | adam
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "none"  # none | cosine | step
    milestones: tuple[int, ...] = ()  # schedule 'step': epochs where lr *= gamma
    step_size: int | None = None  # schedule 'step' without milestones: every step_size epochs
    gamma: float = 0.1


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA when present (or when asked for), else CPU."""
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move to device; channels_last for conv nets on CUDA (faster tensor-core convs)."""
    model = model.to(device)
    if device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op on CPU (CPU bf16 is slower for these small nets)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(params: Iterator[nn.Parameter] | list, spec: OptimSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    raise ValueError(f"unknown optimizer {spec.optimizer!r}; allowed: sgd, adam")


def make_scheduler(optimizer: torch.optim.Optimizer, spec: OptimSpec, epochs: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-epoch schedule (call .step() once per epoch)."""
    if spec.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if spec.schedule == "step":
        if spec.milestones:
            return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(spec.milestones), gamma=spec.gamma)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=spec.step_size or 1, gamma=spec.gamma)
    if spec.schedule == "none":
        return None
    raise ValueError(f"unknown schedule {spec.schedule!r}; allowed: none, cosine, step")


def batches(
    data: TensorSet,
    batch_size: int,
    generator: torch.Generator | None = None,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
    augment: str = "none",
    augment_mask: torch.Tensor | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches as slices of device-resident tensors, optionally augmented on the device.

    `augment_mask` (bool per sample) limits augmentation to some rows, e.g.
    AMUN augments real samples but never its adversarial examples.
    """
    n = len(data)
    if shuffle:
        order = torch.randperm(n, generator=generator).to(data.x.device)
    else:
        order = torch.arange(n, device=data.x.device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        x = data.x[idx]
        if augment != "none":
            if augment_mask is None:
                x = augment_batch(x, augment, generator)
            else:
                rows = augment_mask[idx]
                x = x.clone()
                x[rows] = augment_batch(x[rows], augment, generator)
        yield x, data.y[idx]


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator | None) -> torch.Tensor:
    """Random crop (pad 4, zero fill) + horizontal flip, done on x's device."""
    if kind != "crop_flip":
        raise ValueError(f"unknown augmentation {kind!r}; allowed: none, crop_flip")
    n, _, h, w = x.shape
    pad = 4
    shifts = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (torch.arange(h, device=x.device)[None, :] + shifts[0][:, None])  # (n, h)
    cols = (torch.arange(w, device=x.device)[None, :] + shifts[1][:, None])  # (n, w)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def train_epoch(
    model: nn.Module,
    batch_iter: Iterator[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    grad_clip: float | None = None,
    after_step: Callable[[], None] | None = None,
    before_step: Callable[[], None] | None = None,
) -> float:
    """One pass: forward under autocast, backward, optional clip/gradient hook, step.

    Returns the mean loss; raises FloatingPointError on a non-finite loss so the
    caller can stop a diverged run instead of training on NaNs.
    """
    model.train()
    device = next(model.parameters()).device
    total, count = torch.zeros((), device=device), 0
    for x, y in batch_iter:
        with autocast(device):
            loss = loss_fn(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if before_step is not None:
            before_step()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if after_step is not None:
            after_step()
        total += loss.detach().float()
        count += 1
    mean = (total / max(count, 1)).item()
    if not math.isfinite(mean):
        raise FloatingPointError(f"loss became {mean}")
    return mean


def fit(
    model: nn.Module,
    batch_source: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]],
    spec: OptimSpec,
    *,
    epochs: int,
    loss_fn: LossFn = cross_entropy,
    params: list | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    grad_clip: float | None = None,
    before_step: Callable[[], None] | None = None,
    after_step: Callable[[], None] | None = None,
    on_epoch: EpochCallback | None = None,
) -> list[float]:
    """Train for `epochs` passes over `batch_source()`; returns per-epoch mean losses.

    `params` restricts what is optimised (default: all of `model`'s); pass
    `optimizer` when a hook needs it (e.g. to reset momentum); `on_epoch(epoch,
    logs)` runs after each epoch (1-based) and may return False to stop early.
    """
    if optimizer is None:
        optimizer = make_optimizer(params if params is not None else model.parameters(), spec)
    scheduler = make_scheduler(optimizer, spec, epochs)
    losses = []
    for epoch in range(1, epochs + 1):
        loss = train_epoch(
            model, batch_source(), loss_fn, optimizer, grad_clip=grad_clip, before_step=before_step, after_step=after_step
        )
        if scheduler is not None:
            scheduler.step()
        losses.append(loss)
        if on_epoch is not None and on_epoch(epoch, {"loss": loss}) is False:
            break
    return losses


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Logits in eval mode, float32, batch by batch."""
    was_training = model.training
    model.eval()
    device = x.device
    out = []
    for start in range(0, len(x), batch_size):
        with autocast(device):
            out.append(model(x[start : start + batch_size]).float())
    model.train(was_training)
    if not out:
        return torch.empty(0, device=device)
    return torch.cat(out)


def accuracy(model: nn.Module, data: TensorSet) -> float:
    """Top-1 accuracy in percent (nan for an empty set)."""
    if len(data) == 0:
        return float("nan")
    pred = predict_logits(model, data.x).argmax(1)
    return 100.0 * (pred == data.y).float().mean().item()
