"""An evaluation reads the split's forget and retain sets many times per trial: gathered once, never shipped."""

from __future__ import annotations

import pickle

import torch

from ray_unlearn.data.base import Splits, TensorSet
from ray_unlearn.data.info import CIFAR10


def splits(n: int = 50) -> Splits:
    g = torch.Generator().manual_seed(0)
    train = TensorSet(torch.rand(n, 3, 4, 4, generator=g), torch.randint(0, 10, (n,), generator=g))
    small = TensorSet(train.x[:5], train.y[:5])
    perm = torch.randperm(n, generator=g)
    return Splits(CIFAR10, train, small, small, perm[:10].sort().values, perm[10:].sort().values)


def test_forget_and_retain_are_gathered_once():
    s = splits()
    assert s.forget is s.forget and s.retain is s.retain
    assert torch.equal(s.forget.x, s.train.x[s.forget_idx]) and torch.equal(s.retain.y, s.train.y[s.retain_idx])


def test_gathered_subsets_are_not_pickled_and_gather_again_after():
    s = splits()
    size = len(pickle.dumps(s))
    s.forget, s.retain  # noqa: B018 - gathered now
    assert len(pickle.dumps(s)) == size, "a trial is shipped train and the indices, not copies of them"
    back = pickle.loads(pickle.dumps(s))
    assert torch.equal(back.forget.x, s.forget.x) and torch.equal(back.retain.x, s.retain.x)


def test_a_moved_split_gathers_from_its_own_tensors():
    s = splits()
    s.forget  # noqa: B018
    moved = s.to("cpu")
    assert "forget" not in vars(moved)
    assert moved.forget.x.data_ptr() != s.forget.x.data_ptr()
    assert torch.equal(moved.forget.x, s.forget.x)
