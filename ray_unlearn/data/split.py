"""Seeded, stratified train/val/test splits and forget-set selection (docs/references.md#data-settings)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import DataError
from .base import RawDataset, Splits, TensorSet


def stratified_holdout(y: np.ndarray, n_holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, holdout) with `n_holdout` samples held out, class shares preserved."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and n_holdout >= (counts > 0).sum() else None
    keep, held = train_test_split(idx, test_size=n_holdout, random_state=seed, stratify=stratify)
    return np.sort(keep), np.sort(held)


def make_splits(
    raw: RawDataset,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    forget_kind: str,
    forget_fraction: float,
    forget_classes: tuple[int, ...],
    max_train: int | None = None,
    forget_file: str | None = None,
) -> Splits:
    """Split `raw` into train/val/test and select the forget set inside train."""
    train = raw.train
    y_all = train.y.numpy()
    if len(train) < 10:
        raise DataError(f"{raw.info.name}: only {len(train)} training samples; need at least 10")
    test_idx = None
    if raw.test is None:  # e.g. digits: 70/10/20 of the whole set
        n = len(train)
        rest, test_idx = stratified_holdout(y_all, math.ceil(test_fraction * n), seed)
        keep, val_idx = stratified_holdout(y_all[rest], math.ceil(val_fraction * n), seed)
        train_idx, val_idx = rest[keep], rest[val_idx]
        test = train.subset(torch.from_numpy(test_idx))
    else:
        train_idx, val_idx = stratified_holdout(y_all, math.ceil(val_fraction * len(train)), seed)
        test = raw.test
    if max_train is not None and max_train < len(train_idx):
        keep, _ = stratified_holdout(y_all[train_idx], len(train_idx) - max_train, seed)
        train_idx = train_idx[keep]
    val = train.subset(torch.from_numpy(val_idx))
    train = train.subset(torch.from_numpy(train_idx))
    if forget_kind == "ids":
        forget_idx = request_indices(raw, forget_file, len(train), train_idx, val_idx, test_idx if raw.test is None else None)
    else:
        forget_idx = select_forget(train.y, forget_kind, forget_fraction, forget_classes, raw.info.num_classes, seed, raw.info.name)
    mask = torch.ones(len(train), dtype=torch.bool)
    mask[forget_idx] = False
    retain_idx = torch.nonzero(mask).flatten()
    return Splits(
        info=raw.info,
        train=train,
        val=val,
        test=test,
        forget_idx=forget_idx,
        retain_idx=retain_idx,
        forget_classes=tuple(forget_classes) if forget_kind == "class" else (),
    )


def request_indices(raw: RawDataset, path: str | None, n_train: int, train_idx: np.ndarray, val_idx: np.ndarray,
                    test_idx: np.ndarray | None) -> torch.Tensor:
    """The train-split indices a deletion request file names (by index, or by sample name)."""
    from .deletion import resolve_request

    if raw.names is None:
        return resolve_request(path, n_train, None, {})
    held = {raw.names[i]: "validation" for i in val_idx}
    held.update({raw.names[i]: "test" for i in (test_idx if test_idx is not None else [])})
    return resolve_request(path, n_train, [raw.names[i] for i in train_idx], held)


def select_forget(
    y: torch.Tensor, kind: str, fraction: float, classes: tuple[int, ...], num_classes: int, seed: int, name: str
) -> torch.Tensor:
    """Sorted indices into the train set of the samples to forget."""
    n = len(y)
    if kind == "random":
        n_forget = round(fraction * n)
        if n_forget < 1:
            raise DataError(f"{name}: forget fraction {fraction} of {n} training samples selects none; raise data.forget.fraction")
        gen = torch.Generator().manual_seed(10_007 + seed)  # its own stream, not the split's
        idx = torch.randperm(n, generator=gen)[:n_forget]
    elif kind in ("class", "data_level"):
        present = set(torch.unique(y).tolist())
        for c in classes:
            if c not in present:
                raise DataError(
                    f"{name}: data.forget.classes: class {c} has no training samples; classes present: "
                    f"{', '.join(map(str, sorted(present)))} (the dataset has {num_classes} classes)"
                )
        idx = torch.nonzero(torch.isin(y, torch.tensor(list(classes), dtype=y.dtype))).flatten()
        if kind == "data_level":  # LAF / MixUnlearn protocol: a random `fraction` of each named class
            gen = torch.Generator().manual_seed(10_007 + seed)
            picked = []
            for c in classes:
                members = torch.nonzero(y == c).flatten()
                n_c = round(fraction * len(members))
                if n_c < 1:
                    raise DataError(f"{name}: forget fraction {fraction} of class {c}'s {len(members)} training samples selects none")
                picked.append(members[torch.randperm(len(members), generator=gen)[:n_c]])
            idx = torch.cat(picked)
    else:
        raise DataError(f"unknown forget kind {kind!r}; allowed: random, class, data_level")
    if len(idx) >= n:
        raise DataError(f"{name}: the forget set is the whole training set ({n} samples); nothing would be retained")
    return torch.sort(idx).values


def as_tensor_set(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> TensorSet:
    x = torch.as_tensor(x)
    y = torch.as_tensor(y).long()
    return TensorSet(x.float(), y)
