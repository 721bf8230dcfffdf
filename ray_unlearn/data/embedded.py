"""Datasets generated or shipped inside installed packages: nothing to download."""

from __future__ import annotations

import numpy as np

from .base import RawDataset
from .info import DIGITS, MNIST1D
from .split import as_tensor_set


def load_digits(root: str | None = None, download: bool = False) -> RawDataset:
    """scikit-learn's 1,797 8x8 digits, pixel values 0-16 scaled to [0, 1] (docs/references.md#datasets)."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    return RawDataset(DIGITS, train=as_tensor_set(x, bunch.target), test=None)


def load_mnist1d(root: str | None = None, download: bool = False) -> RawDataset:
    """MNIST-1D (Greydanus & Kobak) built by the package's own generator, never its download.

    4,000 train / 1,000 test sequences of length 40, already standardised, so
    the dataset declares no input range and attacks do not clip.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())  # default args: seed 42, 5,000 samples
    train = as_tensor_set(data["x"].astype(np.float32)[:, None, :], data["y"])
    test = as_tensor_set(data["x_test"].astype(np.float32)[:, None, :], data["y_test"])
    return RawDataset(MNIST1D, train=train, test=test)
