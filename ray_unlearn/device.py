"""Where tensors live and at what precision: the device, channels_last, bf16 autocast, exact fp32 for
attacks and metrics, device-resident or pinned data (docs/design.md#scale). No-ops on CPU."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import torch
from torch import nn

from .data.base import TensorSet
from .models.base import Classifier

logger = logging.getLogger(__name__)


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA when present (or when asked for), else CPU."""
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def place_model(model: nn.Module, device: torch.device, *, channels_last: bool | None = None) -> nn.Module:
    """Move to device; channels_last for conv nets on CUDA (faster tensor-core convs).

    `channels_last`: None (default) = only on CUDA; True/False forces it (e.g.
    tests of the CUDA code path on CPU, or benchmarks without the fast path).
    On CUDA this also turns on cuDNN autotuning (training batch shapes repeat);
    `full_precision` turns it off where shapes change (attacks, metrics).
    """
    device = torch.device(device)
    model = model.to(device)
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return model
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if channels_last is None:
        channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def autocast(
    device: torch.device, enabled: bool | None = None, dtype: torch.dtype = torch.bfloat16
) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op on CPU (CPU bf16 is slower for these small nets).

    `enabled`: None (default) = only on CUDA; True forces autocast on any device
    (on CPU: torch's CPU autocast), False turns it off.
    """
    device = torch.device(device)
    if enabled is None:
        enabled = device.type == "cuda"
    if enabled:
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


@contextlib.contextmanager
def full_precision(device: torch.device | str) -> Iterator[None]:
    """Exact float32 inside: no autocast, no TF32 (matmul, cuDNN), no cuDNN autotuning.

    Attacks and metrics run in it: they compare near-tied logits, and their batch shapes
    change (a shrinking attack batch) so autotuning would search anew almost every call.
    The process-wide flags are restored on exit.
    """
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.autocast(torch.device(device).type, enabled=False):
            yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def plain_classifier(model: nn.Module) -> bool:
    """model(x) is exactly classifier(trunk(mix_features(x))): a `Classifier` with none of these
    overridden (a subclass, an attached mix layer) and no hooks of its own that a split call would skip."""
    cls, own = type(model), vars(model)
    return (isinstance(model, Classifier) and not model._forward_hooks and not model._forward_pre_hooks
            and all(getattr(cls, name) is getattr(Classifier, name) and name not in own
                    for name in ("forward", "embed", "mix_features")))


def fp32_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x) as float32; under autocast the body runs in bf16 and the classifier head in float32.

    Losses and divergences between near-identical models read these: bf16 logits
    (8 mantissa bits) round away the differences they measure. Without autocast
    (the CPU) this is exactly model(x).
    """
    if torch.is_autocast_enabled(x.device.type) and plain_classifier(model):
        h = model.embed(x)
        with torch.autocast(x.device.type, enabled=False):
            return model.classifier(h.float())
    return model(x).float()


def pin_memory(data: TensorSet) -> TensorSet:
    """`data` in page-locked host memory, so batch copies to CUDA can be non_blocking.

    Returns `data` itself where pinning is impossible or pointless: no CUDA
    (pinning needs the driver), data not on the CPU, or already pinned.
    """
    if data.x.device.type != "cpu" or not torch.cuda.is_available():
        return data
    if data.x.is_pinned() and data.y.is_pinned():
        return data
    return TensorSet(data.x.pin_memory(), data.y.pin_memory())


def place_data(data: TensorSet, device: torch.device, *, max_fraction: float = 0.5) -> TensorSet:
    """Where batches for `device` should come from.

    On `device` when the set fits in `max_fraction` of the free device memory
    (CIFAR-10 as float32 is 600 MB), else pinned host memory: pass the result
    to `batches(..., device=device)`, which then copies batch by batch with
    non_blocking=True. On CPU: `data.to(device)`.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return data.to(device)
    if data.x.device.type == "cuda":
        return data.to(device)
    nbytes = sum(t.numel() * t.element_size() for t in (data.x, data.y))
    free, _ = torch.cuda.mem_get_info(device)
    if nbytes <= max_fraction * free:
        return data.to(device)
    logger.info("dataset of %.0f MB kept in pinned host memory (%.0f MB free on %s)", nbytes / 2**20, free / 2**20, device)
    return pin_memory(data.to("cpu"))
