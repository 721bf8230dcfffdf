"""Tensors of one dataset and its train/val/test/forget/retain split.

Everything is a plain tensor pair held on the run's device, so batches are
slices, not DataLoader workers (DESIGN.md "Scale": datasets this size live
on the device).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Callable

import torch


@dataclasses.dataclass
class TensorSet:
    """Inputs `x` (N, C, ...) float in the dataset's range, labels `y` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} rows but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: torch.Tensor) -> "TensorSet":
        idx = idx.to(self.x.device)
        return TensorSet(self.x[idx], self.y[idx])

    def to(self, device: torch.device | str) -> "TensorSet":
        return TensorSet(self.x.to(device), self.y.to(device))

    def concat(self, other: "TensorSet") -> "TensorSet":
        return TensorSet(torch.cat([self.x, other.x]), torch.cat([self.y, other.y]))


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset declares about itself.

    A dataset read from a user's folder (`image_folder`) only knows its shape and
    classes once loaded: its registry entry declares -1 for them (`lazy`), config
    validation checks what the rank of the shape allows, and the loader returns the
    concrete info, which the split and every model are built from.
    """

    name: str
    num_classes: int  # -1: known after loading
    input_shape: tuple[int, ...]  # (C, H, W) or (C, L); -1 entries: known after loading
    # Valid input range; attacks clip to it. None: unbounded (e.g. standardised MNIST-1D).
    input_range: tuple[float, float] | None
    # Augmentation used for reference training when train.augment is 'auto'.
    default_augment: str = "none"
    classes: tuple[str, ...] = ()  # class names, where the dataset has them (image_folder: its sub-directories)

    @property
    def lazy(self) -> bool:
        return self.num_classes < 0 or any(d < 0 for d in self.input_shape)


@dataclasses.dataclass
class RawDataset:
    """A loader's output: a train set, and a test set where the dataset has an official one."""

    info: DatasetInfo
    train: TensorSet
    test: TensorSet | None
    # per-row names of `train` where samples have them (image_folder: paths relative to data.root),
    # so a deletion request can name them
    names: tuple[str, ...] | None = None


@dataclasses.dataclass
class Splits:
    """The split every run works on; forget/retain index into `train`."""

    info: DatasetInfo
    train: TensorSet
    val: TensorSet
    test: TensorSet
    forget_idx: torch.Tensor
    retain_idx: torch.Tensor
    forget_classes: tuple[int, ...] = ()

    @property
    def forget(self) -> TensorSet:
        return self.train.subset(self.forget_idx)

    @property
    def retain(self) -> TensorSet:
        return self.train.subset(self.retain_idx)

    def to(self, device: torch.device | str) -> "Splits":
        return dataclasses.replace(
            self,
            train=self.train.to(device),
            val=self.val.to(device),
            test=self.test.to(device),
            forget_idx=self.forget_idx.to(device),
            retain_idx=self.retain_idx.to(device),
        )

    def fingerprint(self) -> str:
        """Content hash of the split (inputs, labels, forget indices), for provenance."""
        h = hashlib.sha256()
        for t in (self.train.x, self.train.y, self.val.y, self.test.y, self.forget_idx):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


Loader = Callable[..., RawDataset]
