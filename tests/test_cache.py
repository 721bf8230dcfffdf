"""References are trained once, keyed by exactly what they depend on, verified before load.

A cache that cannot lie: every byte of an entry (its metrics included) is under a checksum; a
partial, edited or foreign entry is reported once, removed, rebuilt once and then loaded."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import pytest
import torch

from ray_unlearn.cache import META, Store
from ray_unlearn.config import parse_experiment
from ray_unlearn.data import load_splits
from ray_unlearn.errors import CacheError
from ray_unlearn.references import prepare, reference_key

from .conftest import digits_config

SMALL_TRAIN = {"epochs": 3, "lr": 0.05, "batch_size": 64}


def small_exp(**sections):
    return parse_experiment(digits_config(train=SMALL_TRAIN, **sections))


@pytest.fixture(autouse=True)
def one_thread():
    """Small nets on a busy 2-core machine: one torch thread is many times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="not writable"):
        prepare(small_exp(), Store(blocker / "cache"), torch.device("cpu"))


# --- a cache that cannot lie ------------------------------------------------------------------

TINY_TRAIN = {"epochs": 1, "lr": 0.05, "batch_size": 64}


def tiny_exp():
    return parse_experiment(digits_config(train=TINY_TRAIN))


def edit_retrain_metric(entry):
    """What a user (or a bad merge) might do: valid JSON, one figure changed."""
    doc = json.loads((entry / META).read_text())
    doc.get("meta", doc)["retrain_metrics"]["test_acc"] = 12.5
    (entry / META).write_text(json.dumps(doc, indent=1, sort_keys=True))


def delete_meta(entry):
    (entry / META).unlink()


def replace_by_file(entry):
    shutil.rmtree(entry)
    entry.write_text("not an entry")


def measured(metrics):
    return {k: v for k, v in metrics.items() if k != "seconds"}  # training time differs between two trainings


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One real references entry, trained once for this module; each test damages its own copy."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pristine")
    refs, trained = prepare(tiny_exp(), Store(root), torch.device("cpu"))
    assert trained == ["original", "retrain"]
    return root, refs


@pytest.mark.parametrize("damage, problem", [
    (edit_retrain_metric, "meta.json fails its checksum"),
    (delete_meta, "meta.json is missing"),
    (replace_by_file, "a file, not an entry directory"),
])
def test_damaged_reference_entry_is_rebuilt_once_then_loaded(prepared, tmp_path, caplog, damage, problem):
    pristine, refs = prepared
    root = tmp_path / "cache"
    shutil.copytree(pristine, root)
    store = Store(root)
    damage(store.entry(refs.key))
    with caplog.at_level(logging.WARNING, logger="ray_unlearn.cache"):
        rebuilt, trained = prepare(tiny_exp(), store, torch.device("cpu"))
    assert trained == ["original", "retrain"], "a damaged entry is never loaded"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(store.entry(refs.key)) in warnings[0] and problem in warnings[0], warnings
    assert measured(rebuilt.retrain_metrics) == measured(refs.retrain_metrics), "rebuilt deterministically: the true figures"
    for _ in range(2):
        again, trained = prepare(tiny_exp(), store, torch.device("cpu"))
        assert trained == [], "repaired: loaded from now on, never retrained on every call"
        assert again.retrain_metrics == rebuilt.retrain_metrics
    assert sorted(p.name for p in root.iterdir()) == [refs.key], "no temporary, trash or lock files left behind"


def entry_damages():
    """(name, how to damage a two-tensor entry at `path` given another valid entry `other`, what the warning says)."""

    def edit_field(path, other):
        doc = json.loads((path / META).read_text())
        doc.get("meta", doc)["acc"] = 99.0
        (path / META).write_text(json.dumps(doc))

    def edit_and_rechecksum_a_pt(path, other):  # a foreign .pt whose checksum is "fixed" by hand in meta.json
        torch.save(torch.ones(3), path / "a.pt")
        doc = json.loads((path / META).read_text())
        doc.get("files", doc.get("sha256"))["a.pt"] = "0" * 64
        (path / META).write_text(json.dumps(doc))

    def truncate(path, other):
        data = (path / "a.pt").read_bytes()
        (path / "a.pt").write_bytes(data[: len(data) // 2])

    def delete_pt(path, other):
        (path / "b.pt").unlink()

    def extra_pt(path, other):
        torch.save(torch.zeros(1), path / "c.pt")

    def foreign(path, other):
        shutil.rmtree(path)
        shutil.copytree(other, path)

    def old_format(path, other):  # format 1: per-file checksums only, the metadata unchecked
        doc = json.loads((path / META).read_text())
        (path / META).write_text(json.dumps({**doc["meta"], "key": doc["key"], "sha256": doc["files"]}))

    def not_json(path, other):
        (path / META).write_text("{")

    def a_file(path, other):
        shutil.rmtree(path)
        path.write_bytes(b"")

    return [
        ("edited metadata", edit_field, "meta.json fails its checksum"),
        ("edited checksums", edit_and_rechecksum_a_pt, "meta.json fails its checksum"),
        ("truncated .pt", truncate, "a.pt fails its checksum"),
        ("missing .pt", delete_pt, "b.pt missing"),
        ("extra .pt", extra_pt, "unexpected file(s) c.pt"),
        ("another key's entry", foreign, "another key, 'k-other'"),
        ("an older format", old_format, "not a format-2 entry"),
        ("meta.json not JSON", not_json, "meta.json is not valid JSON"),
        ("a plain file", a_file, "a file, not an entry directory"),
    ]


@pytest.mark.parametrize("case, damage, problem", entry_damages(), ids=[c[0] for c in entry_damages()])
def test_every_damage_is_reported_once_removed_and_the_entry_built_once(tmp_path, caplog, case, damage, problem):
    store = Store(tmp_path)
    tensors = {"a": torch.arange(4.0), "b": {"w": torch.eye(2)}}
    store.put("k-other", {"a": torch.ones(4), "b": {"w": torch.zeros(2, 2)}}, {"acc": 1.0})
    store.put("k", tensors, {"acc": 50.0})
    assert store.get("k", ["a", "b"])[1]["acc"] == 50.0
    damage(store.entry("k"), store.entry("k-other"))
    with caplog.at_level(logging.WARNING, logger="ray_unlearn.cache"):
        assert store.get("k", ["a", "b"]) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(store.entry("k")) in warnings[0] and problem in warnings[0], warnings
    assert not store.entry("k").exists(), "removed"
    builds = []

    def build():
        builds.append(1)
        return tensors, {"acc": 50.0}

    assert store.get_or_build("k", ["a", "b"], build).built
    loaded = store.get_or_build("k", ["a", "b"], build)
    assert not loaded.built and len(builds) == 1
    assert torch.equal(loaded.tensors["a"], tensors["a"]) and loaded.meta["acc"] == 50.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k", "k-other"]


@pytest.mark.parametrize("broken", ["a file", "a directory without meta.json", "an edited entry"])
def test_put_replaces_a_broken_entry_and_keeps_an_intact_one(tmp_path, broken):
    store = Store(tmp_path)
    path = store.entry("k")
    if broken == "a file":
        path.write_text("x")
    elif broken == "a directory without meta.json":
        path.mkdir()
        torch.save(torch.zeros(2), path / "t.pt")
    else:
        store.put("k", {"t": torch.zeros(2)}, {"v": 1})
        doc = json.loads((path / META).read_text())
        doc.get("meta", doc)["v"] = 2
        (path / META).write_text(json.dumps(doc))
    store.put("k", {"t": torch.ones(2)}, {"v": 3})
    tensors, meta = store.get("k", ["t"])
    assert torch.equal(tensors["t"], torch.ones(2)) and meta["v"] == 3
    store.put("k", {"t": torch.full((2,), 7.0)}, {"v": 4})  # an intact entry is content-addressed: kept
    assert store.get("k", ["t"])[1]["v"] == 3


def test_first_build_returns_what_later_loads_return(tmp_path):
    store = Store(tmp_path)
    meta = {"metrics": {"acc": 0.1 + 0.2, "nan": float("nan")}, "pair": (1, 2)}
    built = store.get_or_build("k", ["t"], lambda: ({"t": torch.arange(3)}, meta))
    loaded = store.get_or_build("k", ["t"], lambda: pytest.fail("built twice"))
    assert built.built and not loaded.built
    assert json.dumps(built.meta, sort_keys=True) == json.dumps(loaded.meta, sort_keys=True)
    assert built.meta["pair"] == [1, 2] and built.meta["key"] == "k"


def test_lock_files_do_not_stay_and_a_blocked_lock_dir_is_one_clear_error(tmp_path):
    store = Store(tmp_path)
    with store.lock("k"):
        assert (tmp_path / ".locks" / "k.lock").exists()
    assert not (tmp_path / ".locks").exists(), "released locks leave no files"
    (tmp_path / ".locks").write_text("in the way")
    with pytest.raises(CacheError) as err:
        store.get_or_build("k", ["t"], lambda: ({"t": torch.zeros(1)}, {}))
    assert str(err.value).startswith(f"cannot lock cache entry {store.entry('k')}: ") and "\n" not in str(err.value)


def test_a_thread_waits_for_another_building_the_same_entry(tmp_path):
    """flock is per open file: two threads of one process serialise like two processes."""
    import threading

    store = Store(tmp_path)
    builds, results = [], []
    started = threading.Event()

    def build():
        builds.append(1)
        started.set()
        threading.Event().wait(0.5)
        return {"t": torch.arange(3)}, {"n": len(builds)}

    def worker():
        results.append(store.get_or_build("k", ["t"], build))

    first = threading.Thread(target=worker)
    first.start()
    started.wait(10)
    second = threading.Thread(target=worker)
    second.start()
    first.join(10)
    second.join(10)
    assert len(builds) == 1 and sorted(r.built for r in results) == [False, True]
    assert all(r.meta["n"] == 1 for r in results)


def test_two_threads_preparing_the_same_references_train_them_once(tmp_path):
    import threading

    store, results = Store(tmp_path), []
    threads = [threading.Thread(target=lambda: results.append(prepare(tiny_exp(), store, torch.device("cpu"))))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(trained for _, trained in results) == [[], ["original", "retrain"]]
    assert results[0][0].retrain_metrics == results[1][0].retrain_metrics
