"""References are trained once, keyed by exactly what they depend on, verified before load."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ray_unlearn.cache import Store
from ray_unlearn.config import parse_experiment
from ray_unlearn.data import load_splits
from ray_unlearn.references import prepare, reference_key

from .conftest import digits_config

SMALL_TRAIN = {"epochs": 3, "lr": 0.05, "batch_size": 64}


def small_exp(**sections):
    return parse_experiment(digits_config(train=SMALL_TRAIN, **sections))


def test_second_prepare_trains_nothing(tmp_path):
    exp = small_exp()
    store = Store(tmp_path)
    refs1, trained1 = prepare(exp, store, torch.device("cpu"))
    refs2, trained2 = prepare(exp, store, torch.device("cpu"))
    assert trained1 == ["original", "retrain"]
    assert trained2 == []
    assert refs1.key == refs2.key
    for k, v in refs1.original_state.items():
        assert torch.equal(v, refs2.original_state[k])
    assert refs1.retrain_metrics == refs2.retrain_metrics


def test_key_changes_with_what_references_depend_on_and_only_that():
    base = small_exp()
    splits = load_splits(base.data)
    key = reference_key(base, splits)
    assert reference_key(small_exp(method="amun", fixed={"lr": 0.5}), splits) == key, "method settings are not a dependency"
    assert reference_key(small_exp(objective={"mia_weight": 3.0}), splits) == key
    changed_train = base.replace(train=dataclasses.replace(base.train, lr=0.01))
    assert reference_key(changed_train, splits) != key
    changed_forget = small_exp(data={"dataset": "digits", "forget": {"kind": "class", "classes": [1]}})
    assert reference_key(changed_forget, load_splits(changed_forget.data)) != key
    changed_seed = small_exp(data={"dataset": "digits", "forget": {"kind": "class", "classes": [0]}, "seed": 1})
    assert reference_key(changed_seed, load_splits(changed_seed.data)) != key


def test_corrupt_entry_is_detected_removed_and_rebuilt(tmp_path, caplog):
    exp = small_exp()
    store = Store(tmp_path)
    refs, _ = prepare(exp, store, torch.device("cpu"))
    weights = store.entry(refs.key) / "original.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    again, trained = prepare(exp, store, torch.device("cpu"))
    assert trained == ["original", "retrain"], "a corrupt entry must be rebuilt, never loaded"
    assert "corrupt" in caplog.text
    for k, v in refs.original_state.items():
        assert torch.equal(v, again.original_state[k]), "rebuilt deterministically"


def test_half_written_entry_is_never_visible(tmp_path):
    store = Store(tmp_path)
    (tmp_path / ".tmp-ref-x-123").mkdir()  # what a killed writer leaves
    assert store.get("ref-x", ["original"]) is None


def test_memo_computes_once_and_returns_stored_bytes(tmp_path):
    store = Store(tmp_path)
    memo = store.memo("scope")
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(5.0)}

    a = memo("thing", {"eps": 0.1}, compute)
    b = memo("thing", {"eps": 0.1}, compute)
    c = memo("thing", {"eps": 0.2}, compute)
    assert len(calls) == 2
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["x"], c["x"])


def test_unwritable_cache_fails_before_training(tmp_path):
    from ray_unlearn.errors import CacheError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="not writable"):
        prepare(small_exp(), Store(blocker / "cache"), torch.device("cpu"))
