"""What a dataset declares about itself, and every dataset by name: known without torch.

Config validation reads these declarations; a dataset's loader (torch) is imported only when
the data is loaded. Adding a dataset: one loader module and one entry in `CATALOG`.
"""

from __future__ import annotations

import dataclasses


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


DIGITS = DatasetInfo("digits", num_classes=10, input_shape=(1, 8, 8), input_range=(0.0, 1.0))
MNIST1D = DatasetInfo("mnist1d", num_classes=10, input_shape=(1, 40), input_range=None)
MNIST = DatasetInfo("mnist", num_classes=10, input_shape=(1, 28, 28), input_range=(0.0, 1.0))
FASHION_MNIST = DatasetInfo("fashion_mnist", num_classes=10, input_shape=(1, 28, 28), input_range=(0.0, 1.0))
CIFAR10 = DatasetInfo("cifar10", num_classes=10, input_shape=(3, 32, 32), input_range=(0.0, 1.0), default_augment="crop_flip")
CIFAR100 = DatasetInfo("cifar100", num_classes=100, input_shape=(3, 32, 32), input_range=(0.0, 1.0), default_augment="crop_flip")
IMAGE_FOLDER = DatasetInfo("image_folder", num_classes=-1, input_shape=(-1, -1, -1), input_range=(0.0, 1.0))

# name -> (declaration, "module:function" of its loader, imported when the data is loaded)
CATALOG: dict[str, tuple[DatasetInfo, str]] = {
    info.name: (info, loader)
    for info, loader in [
        (DIGITS, "ray_unlearn.data.embedded:load_digits"),
        (MNIST1D, "ray_unlearn.data.embedded:load_mnist1d"),
        (MNIST, "ray_unlearn.data.vision:load_mnist"),
        (FASHION_MNIST, "ray_unlearn.data.vision:load_fashion_mnist"),
        (CIFAR10, "ray_unlearn.data.vision:load_cifar10"),
        (CIFAR100, "ray_unlearn.data.vision:load_cifar100"),
        (IMAGE_FOLDER, "ray_unlearn.data.folder:load_image_folder"),
    ]
}


def _with_plugins(catalog: dict[str, tuple[DatasetInfo, str]]) -> dict[str, tuple[DatasetInfo, str]]:
    """Datasets of installed packages (entry point group `ray_unlearn.datasets`): a loader
    `(root=None, download=False) -> RawDataset` carrying its declaration as `.info`."""
    from .. import plugins

    for name, (ep, obj) in plugins.loaded("ray_unlearn.datasets").items():
        info = getattr(obj, "info", None)
        if name in catalog:
            plugins.reject("ray_unlearn.datasets", ep, f"dataset {name!r} is a built-in dataset; choose another name")
        elif not isinstance(info, DatasetInfo) or info.name != name:
            plugins.reject("ray_unlearn.datasets", ep, f"its loader needs `.info`, a DatasetInfo named {name!r}")
        else:
            catalog[name] = (info, plugins.target(ep))
    return catalog


CATALOG = _with_plugins(CATALOG)
