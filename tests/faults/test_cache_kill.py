"""A `ray-unlearn prepare` killed (SIGKILL) while it writes the reference cache:
the half-written entry is never loaded, the next prepare rebuilds cleanly (and
removes the dead writer's temporary directory), later runs load the entry.

The references are a ResNet-18 on ten digits for one epoch: cheap to train,
but ~90 MB to write, so the kill lands inside the write."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from ray_unlearn.cache import Store

from ..conftest import digits_config, run_cli
from .helpers import write_config

BIG_AND_QUICK = dict(
    data={"dataset": "digits", "forget": {"kind": "random", "fraction": 0.1}, "max_train": 10},
    model={"arch": "resnet18"},
    train={"epochs": 1},
)


def kill_while_writing(config, cache, cwd) -> bool:
    """Start prepare; SIGKILL it the moment its temporary entry directory appears. True if the kill
    landed before the entry was renamed into place."""
    proc = subprocess.Popen([sys.executable, "-m", "ray_unlearn.cli", "prepare", str(config), "--cache-dir", str(cache)],
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                names = os.listdir(cache)
            except FileNotFoundError:
                names = []
            if any(n.startswith(".tmp-") for n in names):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.0005)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait()
    complete = [p for p in cache.glob("ref-*") if (p / "meta.json").exists()]
    return proc.returncode == -signal.SIGKILL and not complete


def test_prepare_killed_mid_write_leaves_nothing_loadable_and_is_rebuilt(tmp_path):
    config = write_config(tmp_path / "exp.yaml", digits_config(experiment="kill-prepare", **BIG_AND_QUICK))
    for attempt in range(4):  # the kill must land between the temp dir's creation and its rename
        cache = tmp_path / f"cache{attempt}"
        if kill_while_writing(config, cache, tmp_path):
            break
    else:
        pytest.fail("prepare was never caught writing its cache entry")
    leftovers = list(cache.glob(".tmp-*"))
    assert len(leftovers) == 1 and not list(cache.glob("ref-*")), "half an entry, never renamed into place"
    match = re.match(r"\.tmp-(ref-digits-resnet18-[0-9a-f]{16})-", leftovers[0].name)
    assert match, leftovers[0].name
    key = match.group(1)
    assert Store(cache).get(key, ["original", "retrain"]) is None, "a half-written entry is never loaded"

    out = run_cli("prepare", str(config), "--cache-dir", str(cache), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"references {key} trained" in out.stderr
    assert not list(cache.glob(".tmp-*")), "the killed writer's temporary directory is cleaned up"
    found = Store(cache).get(key, ["original", "retrain"])
    assert found is not None and found[1]["key"] == key

    again = run_cli("prepare", str(config), "--cache-dir", str(cache), cwd=tmp_path)
    assert again.returncode == 0 and f"references {key} loaded from cache" in again.stderr, again.stderr[-3000:]
    run = run_cli("run", str(config), "--cache-dir", str(cache), "--no-track", "--set", "fixed.epochs=1", cwd=tmp_path)
    assert f"references {key} loaded from cache" in run.stderr and "Traceback" not in run.stderr, run.stderr[-3000:]


def test_only_temporary_directories_of_dead_writers_are_removed(tmp_path):
    store = Store(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from ray_unlearn.cache import _HOST

    mine = tmp_path / f".tmp-ref-k-{_HOST}-{os.getpid()}-aaaa"  # a live writer (this process)
    gone = tmp_path / f".tmp-ref-k-{_HOST}-{dead.pid}-bbbb"
    other_host = tmp_path / ".tmp-ref-k-elsewhere-1-cccc"  # another node of a shared cache: not ours to judge
    for d in (mine, gone, other_host):
        d.mkdir()
    store.put("ref-k", {"t": torch.zeros(2)}, {})
    assert mine.exists() and other_host.exists() and not gone.exists()
    assert store.get("ref-k", ["t"]) is not None
