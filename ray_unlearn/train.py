"""The one training and evaluation loop everything uses.

Reference training, every method and every metric go through these few
functions, so speed work (device-resident batches, bf16 autocast and
channels_last on CUDA) happens in one place. Batches are index slices of
tensors already on the device: no DataLoader, no worker processes.

The fast path on CUDA (docs/design.md#scale; placement and precision in `device.py`):
- the whole set lives on the device (`device.place_data`); `batches` shuffles and
  augments there, with random numbers drawn on the device from a generator
  seeded by the caller's CPU generator, so no step waits on the host;
- a set too large for the device stays in pinned host memory and
  `batches(..., device=cuda)` copies each batch with non_blocking=True,
  augmenting it on the device;
- `device.place_model` puts conv nets in channels_last, `device.autocast` runs bf16,
  and `train_epoch` keeps the running loss on the device (one sync per epoch).
On CPU these are no-ops and results are bit-for-bit what they were before
the fast path existed (same random draws, same values).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .data.base import TensorSet
from .device import autocast, fp32_logits, full_precision

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


AUGMENTATIONS = ("none", "crop_flip")


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device()
    return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)


def device_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A generator that draws on `device`: `generator` itself when it already
    lives there (always the case on CPU, so CPU draws are unchanged), else a
    new one seeded from one draw of `generator` (deterministic for a seeded
    `generator`; no host<->device copy of random numbers per batch). None stays
    None (the device's default generator)."""
    device = torch.device(device)
    if generator is None or _same_device(generator.device, device):
        return generator
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    return torch.Generator(device=device).manual_seed(seed)


def _host_rows(t: torch.Tensor, rows: torch.Tensor | slice, pin: bool) -> torch.Tensor:
    """`t[rows]` for a host tensor, gathered straight into pinned memory when `pin`
    (a slice of a pinned tensor is already pinned: a view, no copy)."""
    if not pin or isinstance(rows, slice):
        return t[rows]
    out = torch.empty((len(rows), *t.shape[1:]), dtype=t.dtype, pin_memory=True)
    return torch.index_select(t, 0, rows, out=out)


def batches(
    data: TensorSet,
    batch_size: int,
    generator: torch.Generator | None = None,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
    augment: str = "none",
    augment_mask: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    pin: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches as slices of device-resident tensors, optionally augmented on the device.

    `augment_mask` (bool per sample) limits augmentation to some rows, e.g.
    AMUN augments real samples but never its adversarial examples.

    `device`: where batches are wanted; default the data's own device (the
    device-resident path: shuffle, slicing and augmentation all happen there).
    With host data and `device` CUDA (a set too large for the device, see
    `place_data`), each batch is gathered on the host into pinned memory
    (`pin`), copied with non_blocking=True and augmented on the device.

    On a CUDA device nothing here waits for the GPU: the permutation and the
    augmentation's random numbers are drawn on the device (`device_generator`),
    and masked augmentation uses a select instead of boolean indexing. On CPU
    the draws and results are the same as they always were.
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augment!r}; allowed: {', '.join(AUGMENTATIONS)}")
    n = len(data)
    src = data.x.device
    dst = torch.device(device) if device is not None else src
    # staged: batches are gathered where the data lives (the host) and copied to dst
    staged = not _same_device(src, dst) or (device is not None and src.type == "cpu")
    pin_now = staged and pin and src.type == "cpu" and dst.type == "cuda" and torch.cuda.is_available()
    src_gen = device_generator(generator, src)  # the caller's own generator on CPU
    if shuffle:
        order = torch.randperm(n, generator=src_gen, device=src)
    else:
        order = torch.arange(n, device=src)
    aug_gen = None
    if augment != "none":
        aug_gen = src_gen if _same_device(src, dst) else device_generator(generator, dst)
    mask = augment_mask.to(src) if augment != "none" and augment_mask is not None else None
    # a pinned source is copied from directly when batches are contiguous rows
    slices = pin_now and not shuffle and data.x.is_pinned() and data.y.is_pinned()
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = slice(start, min(start + batch_size, n)) if slices else order[start : start + batch_size]
        if staged:
            x = _host_rows(data.x, idx, pin_now).to(dst, non_blocking=pin_now)
            y = _host_rows(data.y, idx, pin_now).to(dst, non_blocking=pin_now)
            rows = None if mask is None else _host_rows(mask, idx, pin_now).to(dst, non_blocking=pin_now)
        else:
            x, y = data.x[idx], data.y[idx]
            rows = None if mask is None else mask[idx]
        if augment != "none":
            x = _augment_rows(x, augment, aug_gen, rows)
        yield x, y


def _augment_rows(
    x: torch.Tensor, kind: str, generator: torch.Generator | None, rows: torch.Tensor | None, select: bool | None = None
) -> torch.Tensor:
    """Augment the rows of `x` where `rows` is True (all rows when None).

    `select`: augment every row and keep the chosen ones with `torch.where`
    (no boolean indexing, which syncs to count the rows on an accelerator);
    None = on any device but the CPU. The CPU keeps drawing random numbers for
    the chosen rows only, so its results stay those of every earlier run.
    """
    if rows is None:
        return augment_batch(x, kind, generator)
    if select is None:
        select = x.device.type != "cpu"
    if select:
        keep = rows.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(keep, augment_batch(x, kind, generator), x)
    x = x.clone()
    x[rows] = augment_batch(x[rows], kind, generator)
    return x


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator | None) -> torch.Tensor:
    """Random crop (pad 4, zero fill) + horizontal flip, done on x's device.

    Random numbers are drawn on x's device (see `device_generator`); the crop
    and flip are a single gather from the padded batch. Returns a new
    contiguous (N, C, H, W) tensor; `x` is not modified.
    """
    if kind != "crop_flip":
        raise ValueError(f"unknown augmentation {kind!r}; allowed: none, crop_flip")
    n, c, h, w = x.shape
    pad = 4
    generator = device_generator(generator, x.device)
    shifts = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=x.device)
    flips = torch.rand(n, generator=generator, device=x.device) < 0.5
    padded = F.pad(x, (pad, pad, pad, pad))
    width = w + 2 * pad
    rows = torch.arange(h, device=x.device)[None, :] + shifts[0][:, None]  # (n, h) rows of the padded image
    cols = torch.arange(w, device=x.device)[None, :] + shifts[1][:, None]  # (n, w)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    index = (rows[:, :, None] * width + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, (h + 2 * pad) * width).gather(2, index).view(n, c, h, w)


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(fp32_logits(model, x), y)


def train_epoch(
    model: nn.Module,
    batch_iter: Iterator[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    grad_clip: float | None = None,
    after_step: Callable[[], None] | None = None,
    before_step: Callable[[], None] | None = None,
    amp: bool | None = None,
) -> float:
    """One pass: forward under autocast, backward, optional clip/gradient hook, step.

    Returns the mean loss; raises FloatingPointError on a non-finite loss so the
    caller can stop a diverged run instead of training on NaNs. The running
    loss stays on the device: the only host<->device sync is the final mean
    (hooks and loss functions should not add per-step ones). `amp`: autocast
    override (None = bf16 on CUDA only, see `autocast`).
    """
    model.train()
    device = next(model.parameters()).device
    total, count = torch.zeros((), device=device), 0
    for x, y in batch_iter:
        with autocast(device, amp):
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
    """Logits in eval mode, computed in float32, batch by batch.

    Runs in `full_precision` (also inside a caller's autocast region): metrics and
    AMUN's "already misclassified" decision compare near-tied logits and class
    probabilities, which bf16 (8 mantissa bits) and TF32 (10) round together.
    """
    was_training = model.training
    model.eval()
    device = x.device
    out = []
    with full_precision(device):
        for start in range(0, len(x), batch_size):
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
