"""Datasets through their real loaders; splits seeded, stratified, disjoint and complete."""

from __future__ import annotations

import pytest
import torch

from ray_unlearn.config import DataConfig, ForgetConfig
from ray_unlearn.data import DATASETS, load_splits
from ray_unlearn.errors import DataError

from .idx_files import write_mnist


def cfg(**kw) -> DataConfig:
    forget = kw.pop("forget", ForgetConfig(kind="random", fraction=0.1))
    return DataConfig(forget=forget, **kw)


def assert_partition(splits):
    n = len(splits.train)
    f, r = set(splits.forget_idx.tolist()), set(splits.retain_idx.tolist())
    assert not f & r, "forget and retain overlap"
    assert f | r == set(range(n)), "forget + retain is not the whole train set"
    assert len(splits.forget) + len(splits.retain) == n


def test_digits_split_sizes_match_methods_md():
    s = load_splits(cfg(dataset="digits"))
    assert (len(s.train), len(s.val), len(s.test)) == (1257, 180, 360)
    assert len(s.forget_idx) == 126  # random 10 % of 1,257
    assert s.train.x.shape[1:] == (1, 8, 8)
    assert 0.0 <= float(s.train.x.min()) and float(s.train.x.max()) <= 1.0
    assert_partition(s)


def test_digits_split_is_stratified():
    s = load_splits(cfg(dataset="digits"))
    for part in (s.train, s.val, s.test):
        counts = torch.bincount(part.y, minlength=10).float()
        share = counts / counts.sum()
        assert float((share - 0.1).abs().max()) < 0.02


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = (load_splits(cfg(dataset="digits", seed=s)) for s in (0, 0, 1))
    assert torch.equal(a.forget_idx, b.forget_idx) and torch.equal(a.train.x, b.train.x)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_class_forgetting_takes_every_train_sample_of_the_class():
    s = load_splits(cfg(dataset="digits", forget=ForgetConfig(kind="class", classes=(0, 3))))
    assert set(s.forget.y.tolist()) == {0, 3}
    assert not set(s.retain.y.tolist()) & {0, 3}
    assert_partition(s)
    assert s.forget_classes == (0, 3)


def test_mnist_through_torchvision_loader_on_idx_files(tmp_path):
    root = write_mnist(tmp_path, n_train=300, n_test=100)
    s = load_splits(cfg(dataset="mnist", root=str(root), forget=ForgetConfig(kind="class", classes=(7,))))
    assert s.train.x.shape[1:] == (1, 28, 28)
    assert len(s.train) + len(s.val) == 300 and len(s.test) == 100
    assert set(s.forget.y.tolist()) == {7}
    assert_partition(s)


def test_fashion_mnist_through_torchvision_loader(tmp_path):
    root = write_mnist(tmp_path, folder="FashionMNIST", n_train=200, n_test=50)
    s = load_splits(cfg(dataset="fashion_mnist", root=str(root)))
    assert len(s.test) == 50
    assert_partition(s)


def test_missing_dataset_is_a_clear_error_without_download(tmp_path):
    with pytest.raises(DataError, match=r"no readable dataset under .*data.download=true"):
        load_splits(cfg(dataset="mnist", root=str(tmp_path / "empty")))


def test_cifar10_missing_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="cifar10: no readable dataset"):
        load_splits(cfg(dataset="cifar10", root=str(tmp_path)))


def test_forget_class_absent_from_train_set(tmp_path):
    root = write_mnist(tmp_path, n_train=90, n_test=20)
    # only 9 train samples per class; drop class 9 by building a split of a subset via max_train is not
    # enough, so ask for a class the labels never contain: write labels 0-8 only
    import numpy as np

    from .idx_files import _write_idx

    raw = root / "MNIST" / "raw"
    labels = (np.arange(90) % 9).astype(np.uint8)
    _write_idx(raw / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match="class 9 has no training samples"):
        load_splits(cfg(dataset="mnist", root=str(root), forget=ForgetConfig(kind="class", classes=(9,))))


def test_forget_whole_train_set_is_rejected():
    from ray_unlearn.data import select_forget

    y = torch.zeros(20, dtype=torch.long)
    with pytest.raises(DataError, match="whole training set"):
        select_forget(y, "class", 0.1, (0,), 10, 0, "toy")


def test_every_dataset_declares_its_input_range():
    for name, (info, _) in DATASETS.items():
        assert info.input_range is None or info.input_range == (0.0, 1.0), name
    assert DATASETS["mnist1d"][0].input_range is None


def test_mnist1d_is_generated_never_downloaded(monkeypatch):
    import mnist1d.data

    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d tried to download")

    monkeypatch.setattr(mnist1d.data.requests, "get", no_network)
    s = load_splits(cfg(dataset="mnist1d"))
    assert s.train.x.shape[1:] == (1, 40)
    assert len(s.train) + len(s.val) == 4000 and len(s.test) == 1000
    assert_partition(s)


def test_data_level_forgetting_takes_the_stated_share_of_each_named_class_only():
    """docs/references.md#forget-kinds (LAF / MixUnlearn protocol): a random 40 % of each of classes 5-9."""
    forget = ForgetConfig(kind="data_level", classes=(5, 6, 7, 8, 9), fraction=0.4)
    s = load_splits(cfg(dataset="digits", forget=forget))
    assert_partition(s)
    y_forget = s.train.y[s.forget_idx]
    assert set(y_forget.tolist()) == {5, 6, 7, 8, 9}
    for c in range(10):
        in_train = int((s.train.y == c).sum())
        expected = round(0.4 * in_train) if c >= 5 else 0
        assert int((y_forget == c).sum()) == expected, c
    assert s.forget_classes == (), "sample-level forgetting: no class is gone, metrics treat it like random"
    again = load_splits(cfg(dataset="digits", forget=forget))
    other = load_splits(cfg(dataset="digits", forget=forget, seed=1))
    assert torch.equal(again.forget_idx, s.forget_idx)
    assert not torch.equal(other.train.x[other.forget_idx], s.train.x[s.forget_idx])


def test_data_level_forgetting_needs_classes():
    from ray_unlearn.errors import ConfigError

    with pytest.raises(ConfigError, match="data.forget.classes: is required when kind is 'data_level'"):
        ForgetConfig(kind="data_level", fraction=0.4)
