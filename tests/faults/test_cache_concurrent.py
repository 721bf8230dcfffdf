"""Two processes that need the same missing cache entry build it once: the second waits on the
first's lock (an OS file lock on `<root>/.locks/<key>.lock`), then loads its entry. A builder
killed with SIGKILL while it holds the lock does not leave the entry locked: the next one builds.

Real processes (this test's and a worker started with `python -c`), real files, a real SIGKILL;
every build appends its pid to a log, so the test counts builds by counting lines."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from ray_unlearn.cache import _HOST, Store

from ..conftest import REPO

# One process wanting entry KEY of the store at ROOT: waits for GO (if given), then get_or_build;
# its build appends its pid to LOG and takes HOLD seconds. Prints what it got as one JSON line.
WORKER = r"""
import hashlib, json, os, sys, time
from pathlib import Path

import torch

from ray_unlearn.cache import Store

root, key, log, ready, go, hold = sys.argv[1:7]
Path(ready).touch()
while go != "-" and not os.path.exists(go):
    time.sleep(0.005)


def build():
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(float(hold))
    t = torch.randn(64, generator=torch.Generator().manual_seed(os.getpid()))  # each builder's own content
    return {"t": t}, {"builder": os.getpid()}


entry = Store(root).get_or_build(key, ["t"], build)
print(json.dumps({"built": entry.built, "builder": entry.meta["builder"],
                  "sha256": hashlib.sha256(entry.tensors["t"].numpy().tobytes()).hexdigest()}))
"""


def start_worker(tmp_path: Path, name: str, *, go: str = "-", hold: float = 2.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(tmp_path / "cache"), "k", str(tmp_path / "builds.log"),
         str(tmp_path / f"{name}.ready"), go, str(hold)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def builds(tmp_path: Path) -> list[str]:
    log = tmp_path / "builds.log"
    return log.read_text().split() if log.exists() else []


def never():
    raise AssertionError("built again")


def wait_for(condition, proc: subprocess.Popen, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited ({proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_two_processes_building_one_entry_at_once_build_it_once(tmp_path, caplog):
    """This test's process and a worker process ask for the same missing entry at the same moment."""
    go = tmp_path / "go"
    worker = start_worker(tmp_path, "worker", go=str(go))
    try:
        wait_for(lambda: (tmp_path / "worker.ready").exists(), worker, "it was ready")
        go.touch()
        mine = Store(tmp_path / "cache").get_or_build("k", ["t"], lambda: build_here(tmp_path))
        out, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err[-2000:]
    theirs = json.loads(out.strip().splitlines()[-1])
    assert len(builds(tmp_path)) == 1, f"built by {builds(tmp_path)}"
    assert sorted([mine.built, theirs["built"]]) == [False, True]
    builder = int(builds(tmp_path)[0])
    assert mine.meta["builder"] == theirs["builder"] == builder
    assert hashlib.sha256(mine.tensors["t"].numpy().tobytes()).hexdigest() == theirs["sha256"], \
        "both got the one entry the builder wrote"
    waited = err if theirs["built"] is False else caplog.text  # the one that did not build waited, and said so
    assert f"is being built by {_HOST} pid {builder}" in waited, f"they overlapped: {waited[-2000:]}"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["k"], "no lock or temporary files left"


def build_here(tmp_path: Path):
    with open(tmp_path / "builds.log", "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(2.0)
    return {"t": torch.randn(64, generator=torch.Generator().manual_seed(os.getpid()))}, {"builder": os.getpid()}


def test_a_builder_killed_holding_the_lock_does_not_block_the_next(tmp_path):
    killed = start_worker(tmp_path, "killed", hold=600)
    try:
        wait_for(lambda: len(builds(tmp_path)) == 1, killed, "it started building")
        killed.send_signal(signal.SIGKILL)  # inside build(), holding the lock
        killed.wait(30)
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    assert killed.returncode == -signal.SIGKILL
    lock = tmp_path / "cache" / ".locks" / "k.lock"
    assert lock.exists(), "the dead holder's lock file is still there"
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if the lock outlived its holder
    finally:
        os.close(fd)
    store = Store(tmp_path / "cache")
    assert not store.entry("k").exists()
    rebuilt = store.get_or_build("k", ["t"], lambda: build_here(tmp_path))
    assert rebuilt.built, "the lock died with its holder: the next one builds"
    assert builds(tmp_path) == [str(killed.pid), str(os.getpid())]
    loaded = store.get_or_build("k", ["t"], never)
    assert not loaded.built and loaded.meta["builder"] == os.getpid()
