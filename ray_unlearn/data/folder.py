"""`image_folder`: a user's own images, one sub-directory per class (torchvision's ImageFolder layout).

    data.root/
      cat/001.png 002.jpg ...
      dog/...

Classes are the sub-directories in sorted order (class id 0 = the first name).
Images are read with PIL, converted to 8-bit grayscale when every image is
grayscale and to RGB otherwise, and scaled to float tensors in [0, 1]. All
images must share one size (resize them beforehand); the shape and number of
classes are only known here, so `DatasetInfo` of the registry declares them
lazily (-1) and this loader returns the concrete one. There is no official
test split: test and validation are held out like digits'.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import DatasetInfo, RawDataset, TensorSet
from .info import IMAGE_FOLDER

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def load_image_folder(root: str | None = None, download: bool = False) -> RawDataset:
    name = IMAGE_FOLDER.name
    if not root:
        raise DataError(f"{name}: set data.root (or --data-dir) to a directory with one sub-directory of images per class")
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise DataError(f"{name}: {folder} is not a directory (data.root)")
    import torchvision.datasets as tvd

    try:
        found = tvd.ImageFolder(str(folder))  # scans class directories and image extensions; opens nothing
    except (FileNotFoundError, OSError) as err:
        raise DataError(f"{name}: {folder}: {err}") from None
    classes = tuple(found.classes)
    if len(classes) < 2:
        raise DataError(f"{name}: {folder} holds {len(classes)} class ({', '.join(classes)}); "
                        "unlearning needs at least two class sub-directories")
    paths = [Path(p) for p, _ in found.samples]
    sizes, modes = _headers(paths, folder)
    common, _ = Counter(sizes).most_common(1)[0]
    odd = next((i for i, size in enumerate(sizes) if size != common), None)
    if odd is not None:
        first = sizes.index(common)
        raise DataError(
            f"{name}: images must all have one size; {paths[first].relative_to(folder)} is {_wh(common)} but "
            f"{paths[odd].relative_to(folder)} is {_wh(sizes[odd])} ({sum(s != common for s in sizes)} of {len(sizes)} "
            "images differ; resize them first)"
        )
    mode = "L" if all(m in GRAY_MODES for m in modes) else "RGB"
    x = torch.from_numpy(np.stack([_pixels(p, mode, folder) for p in paths]))
    x = x.unsqueeze(1) if mode == "L" else x.permute(0, 3, 1, 2)
    x = x.float().div_(255.0).contiguous()
    y = torch.as_tensor(found.targets, dtype=torch.long)
    info = DatasetInfo(name, num_classes=len(classes), input_shape=tuple(x.shape[1:]), input_range=(0.0, 1.0), classes=classes)
    names = tuple(p.relative_to(folder).as_posix() for p in paths)
    return RawDataset(info, train=TensorSet(x, y), test=None, names=names)


def _headers(paths: list[Path], folder: Path) -> tuple[list[tuple[int, int]], list[str]]:
    from PIL import Image

    sizes, modes = [], []
    for path in paths:
        try:
            with Image.open(path) as img:
                sizes.append(img.size)
                modes.append(img.mode)
        except OSError as err:  # PIL.UnidentifiedImageError is an OSError
            raise DataError(f"image_folder: {path.relative_to(folder)} is not a readable image: {err}") from None
    return sizes, modes


def _pixels(path: Path, mode: str, folder: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert(mode), dtype=np.uint8)
    except (OSError, ValueError) as err:  # e.g. a truncated file: the header reads, the pixels do not
        raise DataError(f"image_folder: {path.relative_to(folder)} could not be decoded: {err}") from None


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"
