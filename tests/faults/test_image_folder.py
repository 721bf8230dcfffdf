"""`dataset: image_folder` (torchvision's ImageFolder layout under data.root) and the
ways a user's folder can be wrong: each a DataError/ConfigError, exit 2 through
the CLI with no traceback. The image files are written with PIL here."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ray_unlearn.cache import Store
from ray_unlearn.config import load_experiment
from ray_unlearn.data import DATASETS, load_splits
from ray_unlearn.errors import ConfigError, DataError
from ray_unlearn.references import prepare

from ..conftest import digits_config, run_cli
from .helpers import assert_user_error, write_config


def write_images(root: Path, classes: dict[str, list[tuple[int, int]]], mode: str = "RGB", seed: int = 0) -> Path:
    """One sub-directory per class, one PNG per (width, height) listed; each class has its own colour."""
    rng = np.random.default_rng(seed)
    for c, (name, sizes) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, (w, h) in enumerate(sizes):
            pixels = rng.integers(0, 120, size=(h, w, 3), dtype=np.uint8)
            pixels[..., c % 3] += 120
            Image.fromarray(pixels, "RGB").convert(mode).save(root / name / f"{i:03d}.png")
    return root


def folder_config(tmp_path: Path, root: Path, **changes) -> Path:
    data = {"dataset": "image_folder", "root": str(root), "forget": {"kind": "class", "classes": [1]}, "seed": 0}
    data.update(changes.pop("data", {}))
    raw = digits_config(experiment="folder", data=data, train={"epochs": 2, "lr": 0.05, "batch_size": 16}, **changes)
    return write_config(tmp_path / f"exp-{len(list(tmp_path.glob('exp-*')))}.yaml", raw)


def three_classes(root: Path, mode: str = "RGB") -> Path:
    return write_images(root, {name: [(8, 8)] * 12 for name in ("ant", "bee", "cat")}, mode=mode)


def test_a_folder_of_images_loads_as_float_tensors_and_trains_references(tmp_path):
    info, _ = DATASETS["image_folder"]
    assert info.lazy, "shape and classes are declared as known after loading"
    exp = load_experiment(folder_config(tmp_path, three_classes(tmp_path / "rgb")))
    splits = load_splits(exp.data)
    assert splits.info.input_shape == (3, 8, 8) and splits.info.num_classes == 3
    assert splits.info.classes == ("ant", "bee", "cat")
    x = torch.cat([splits.train.x, splits.val.x, splits.test.x])
    assert x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert set(splits.train.y[splits.forget_idx].tolist()) == {1}, "class 1 = the second sorted sub-directory"
    refs, trained = prepare(exp, Store(tmp_path / "cache"), torch.device("cpu"))
    assert trained == ["original", "retrain"] and refs.model("original", torch.device("cpu"))(x[:2]).shape == (2, 3)

    gray = load_experiment(folder_config(tmp_path, three_classes(tmp_path / "gray", mode="L")))
    assert load_splits(gray.data).info.input_shape == (1, 8, 8), "all-grayscale folders keep one channel"


BROKEN = {  # name -> (how to build the folder, config changes, words of the error)
    "one_class": (lambda r: write_images(r, {"only": [(8, 8)] * 20}), {}, "at least two class"),
    "mixed_sizes": (lambda r: write_images(r, {"a": [(8, 8)] * 10, "b": [(8, 8)] * 9 + [(12, 10)]}), {},
                    "a/000.png is 8x8 but b/009.png is 12x10"),
    "empty_forget": (three_classes, {"data": {"forget": {"kind": "random", "fraction": 0.001}}}, "selects none"),
    "forget_everything": (lambda r: write_images(r, {"a": [(8, 8)] * 10, "b": [(8, 8)] * 10}),
                          {"data": {"forget": {"kind": "class", "classes": [0, 1]}}}, "whole training set"),
    "absent_class": (three_classes, {"data": {"forget": {"kind": "class", "classes": [5]}}},
                     "class 5 does not exist; the dataset has classes 0..2 (0=ant, 1=bee, 2=cat)"),
    "no_class_dirs": (lambda r: r.mkdir(parents=True) or r, {}, "Couldn't find any class folder"),
    "corrupt_image": (lambda r: (three_classes(r), (r / "bee" / "005.png").write_bytes(b"\x89PNG not really"))[0], {},
                      "bee/005.png is not a readable image"),
    "wrong_arch": (three_classes, {"model": {"arch": "cnn1d"}}, "cnn1d takes 1-D inputs but dataset image_folder gives images"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_folder_is_a_clear_error(name, tmp_path):
    build, changes, words = BROKEN[name]
    config = folder_config(tmp_path, build(tmp_path / "images"), **changes)
    with pytest.raises((DataError, ConfigError), match=words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        exp = load_experiment(config)
        prepare(exp, Store(tmp_path / "cache"), torch.device("cpu"))
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir()), "nothing cached"


def test_a_missing_root_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.root: is required for dataset image_folder"):
        load_experiment(write_config(tmp_path / "exp.yaml", digits_config(data={"dataset": "image_folder"})))
    with pytest.raises(DataError, match="is not a directory"):
        load_splits(load_experiment(folder_config(tmp_path, tmp_path / "nowhere")).data)


def test_through_the_cli_each_broken_folder_exits_2_without_traceback(tmp_path):
    def one(name):
        work = tmp_path / name
        work.mkdir()
        build, changes, words = BROKEN[name]
        config = folder_config(work, build(work / "images"), **changes)
        command = "tune" if name == "absent_class" else "prepare"
        extra = ["--set", "search.lr.float=[0.001,0.01]", "--storage", str(work / "rr")] if command == "tune" else []
        return name, words, run_cli(command, str(config), "--cache-dir", str(work / "cache"), *extra, cwd=work)

    with ThreadPoolExecutor(2) as pool:
        for name, words, out in pool.map(one, sorted(BROKEN)):
            assert words in assert_user_error(out), (name, out.stderr)
            assert not (tmp_path / name / "rr").exists() or not list((tmp_path / name / "rr").iterdir()), "no trial started"
            assert not (tmp_path / name / "mlflow.db").exists(), "the data is checked before MLflow is reached"
