"""torchvision's real dataset classes, read from `data.root` (download only when asked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import DatasetInfo, RawDataset, TensorSet
from .info import CIFAR10, CIFAR100, FASHION_MNIST, MNIST


def _open(cls_name: str, info: DatasetInfo, root: str | None, download: bool, train: bool):
    import torchvision.datasets as tvd

    folder = Path(root or "data").expanduser().resolve()
    try:
        return getattr(tvd, cls_name)(str(folder), train=train, download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted..."
        hint = "" if download else "; pass --set data.download=true to fetch it, or --data-dir to point at a copy"
        raise DataError(f"{info.name}: no readable dataset under {folder} ({err}){hint}") from None
    except (OSError, ValueError, IndexError) as err:
        raise DataError(f"{info.name}: files under {folder} could not be read: {err}") from None


def _images(data: np.ndarray | torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(data))
    x = x.permute(0, 3, 1, 2) if channels_last else x.unsqueeze(1)
    return x.float().div_(255.0).contiguous()


def _load(cls_name: str, info: DatasetInfo, root: str | None, download: bool, hwc: bool) -> RawDataset:
    sets = []
    for train in (True, False):
        ds = _open(cls_name, info, root, download, train)
        x = _images(ds.data, channels_last=hwc)
        if tuple(x.shape[1:]) != info.input_shape:
            raise DataError(f"{info.name}: expected images of shape {info.input_shape}, found {tuple(x.shape[1:])}")
        sets.append(TensorSet(x, torch.as_tensor(np.asarray(ds.targets)).long()))
    return RawDataset(info, train=sets[0], test=sets[1])


def load_mnist(root: str | None = None, download: bool = False) -> RawDataset:
    return _load("MNIST", MNIST, root, download, hwc=False)


def load_fashion_mnist(root: str | None = None, download: bool = False) -> RawDataset:
    return _load("FashionMNIST", FASHION_MNIST, root, download, hwc=False)


def load_cifar10(root: str | None = None, download: bool = False) -> RawDataset:
    return _load("CIFAR10", CIFAR10, root, download, hwc=True)


def load_cifar100(root: str | None = None, download: bool = False) -> RawDataset:
    return _load("CIFAR100", CIFAR100, root, download, hwc=True)
