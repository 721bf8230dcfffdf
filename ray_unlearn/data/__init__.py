"""Datasets and the split every run works on. Plain PyTorch: no ray, optuna or mlflow."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import DataError

from .base import DatasetInfo, Loader, RawDataset, Splits, TensorSet
from .embedded import DIGITS, MNIST1D, load_digits, load_mnist1d
from .folder import IMAGE_FOLDER, load_image_folder
from .split import make_splits, select_forget
from .vision import CIFAR10, CIFAR100, FASHION_MNIST, MNIST, load_cifar10, load_cifar100, load_fashion_mnist, load_mnist

if TYPE_CHECKING:
    from ..config import DataConfig

# name -> (what the dataset declares, how to load it); the info is known without loading, except a
# lazy one's shape and classes (image_folder: the loader returns them; `check_loaded` checks the request).
DATASETS: dict[str, tuple[DatasetInfo, Loader]] = {
    info.name: (info, loader)
    for info, loader in [
        (DIGITS, load_digits),
        (MNIST1D, load_mnist1d),
        (MNIST, load_mnist),
        (FASHION_MNIST, load_fashion_mnist),
        (CIFAR10, load_cifar10),
        (CIFAR100, load_cifar100),
        (IMAGE_FOLDER, load_image_folder),
    ]
}


def load_splits(cfg: "DataConfig") -> Splits:
    """Load `cfg.dataset` and split it as `cfg` says (CPU tensors; move with `.to(device)`)."""
    _, loader = DATASETS[cfg.dataset]
    raw = loader(root=cfg.root, download=cfg.download)
    check_forget_classes(cfg, raw.info)
    return make_splits(
        raw,
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        forget_kind=cfg.forget.kind,
        forget_fraction=cfg.forget.fraction,
        forget_classes=cfg.forget.classes,
        max_train=cfg.max_train,
        forget_file=cfg.forget.file,
    )


def check_forget_classes(cfg: "DataConfig", info: DatasetInfo) -> None:
    """The forget request names classes the loaded dataset has (config validation does this
    for datasets that declare their classes; a lazy one is checked here, once loaded)."""
    if cfg.forget.kind not in ("class", "data_level"):
        return
    for i, c in enumerate(cfg.forget.classes):
        if not 0 <= c < info.num_classes:
            names = f" ({', '.join(f'{k}={n}' for k, n in enumerate(info.classes))})" if info.classes else ""
            raise DataError(f"{info.name}: data.forget.classes[{i}]: class {c} does not exist; "
                            f"the dataset has classes 0..{info.num_classes - 1}{names}")


__all__ = ["DATASETS", "DatasetInfo", "RawDataset", "Splits", "TensorSet", "load_splits", "make_splits", "select_forget"]
