"""Datasets and the split every run works on. Plain PyTorch: no ray, optuna or mlflow."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import DatasetInfo, Loader, RawDataset, Splits, TensorSet
from .embedded import DIGITS, MNIST1D, load_digits, load_mnist1d
from .split import make_splits, select_forget
from .vision import CIFAR10, CIFAR100, FASHION_MNIST, MNIST, load_cifar10, load_cifar100, load_fashion_mnist, load_mnist

if TYPE_CHECKING:
    from ..config import DataConfig

# name -> (what the dataset declares, how to load it); the info is known without loading.
DATASETS: dict[str, tuple[DatasetInfo, Loader]] = {
    info.name: (info, loader)
    for info, loader in [
        (DIGITS, load_digits),
        (MNIST1D, load_mnist1d),
        (MNIST, load_mnist),
        (FASHION_MNIST, load_fashion_mnist),
        (CIFAR10, load_cifar10),
        (CIFAR100, load_cifar100),
    ]
}


def load_splits(cfg: "DataConfig") -> Splits:
    """Load `cfg.dataset` and split it as `cfg` says (CPU tensors; move with `.to(device)`)."""
    _, loader = DATASETS[cfg.dataset]
    raw = loader(root=cfg.root, download=cfg.download)
    return make_splits(
        raw,
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        forget_kind=cfg.forget.kind,
        forget_fraction=cfg.forget.fraction,
        forget_classes=cfg.forget.classes,
        max_train=cfg.max_train,
    )


__all__ = ["DATASETS", "DatasetInfo", "RawDataset", "Splits", "TensorSet", "load_splits", "make_splits", "select_forget"]
