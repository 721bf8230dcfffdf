"""Tensors of one dataset and its train/val/test/forget/retain split.

Everything is a plain tensor pair held on the run's device, so batches are
slices, not DataLoader workers (docs/design.md#scale: datasets this size live
on the device).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Callable

import torch

from .info import DatasetInfo  # noqa: F401 - re-exported


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

    # gathered once (the split is immutable), never pickled: a trial gathers where it runs
    @functools.cached_property
    def forget(self) -> TensorSet:
        return self.train.subset(self.forget_idx)

    @functools.cached_property
    def retain(self) -> TensorSet:
        return self.train.subset(self.retain_idx)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("forget", "retain")}

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
