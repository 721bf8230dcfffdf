"""Unwritable or full storage: a clear error (exit 2, one or two lines, no
traceback) before any trial starts, and nothing created in MLflow.

Tests run as root, so a read-only mode bit blocks nothing: an unwritable place
is a path under a regular file. A full disk is a small tmpfs filled up (skipped
where this process may not mount one)."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..conftest import digits_config, run_cli
from .helpers import assert_user_error, write_config

SEARCH = {"lr": {"float": [1e-3, 1e-2], "log": True}}


def case_dir(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    write_config(d / "exp.yaml", digits_config(experiment=f"unwritable-{name}", method="finetune", search=SEARCH,
                                               train={"epochs": 1, "lr": 0.05, "batch_size": 64}))
    return d


def nothing_created(d: Path, cache: Path | None = None) -> None:
    assert not (d / "mlflow.db").exists(), "no MLflow store, experiment or run"
    assert not list(d.glob("ray_results*")) or not any(p.iterdir() for p in d.glob("ray_results*"))
    if cache is not None and cache.is_dir():
        assert not any(cache.iterdir()), "nothing trained"


def parallel(*calls):
    """`ray-unlearn ARGS...` in each (args..., cwd), two at a time."""
    with ThreadPoolExecutor(2) as pool:
        return [f.result() for f in [pool.submit(run_cli, *args, cwd=cwd) for *args, cwd in calls]]


def test_storage_or_cache_under_a_regular_file_fails_before_anything_starts(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    storage, cache, run_cache = (case_dir(tmp_path, n) for n in ("storage", "cache", "run"))
    out_storage, out_cache, out_run = parallel(
        ("tune", "exp.yaml", "--storage", str(blocker / "results"), "--cache-dir", str(storage / "c"), storage),
        ("tune", "exp.yaml", "--cache-dir", str(blocker / "cache"), "--storage", str(cache / "rr"), cache),
        ("run", "exp.yaml", "--cache-dir", str(blocker / "cache"), run_cache),
    )
    line = assert_user_error(out_storage, "--storage", str(blocker / "results"))
    assert "not a writable directory" in line
    nothing_created(storage, storage / "c")
    assert "not writable" in assert_user_error(out_cache, str(blocker / "cache"))
    nothing_created(cache)
    assert not (cache / "rr").exists() or not any((cache / "rr").iterdir())
    assert "not writable" in assert_user_error(out_run, str(blocker / "cache"))
    nothing_created(run_cache)


@pytest.fixture
def tiny_disks(tmp_path):
    """Two tmpfs mounts: one full to the last byte, one of 128 KiB (room for a probe, not for references)."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small disk")
    mounts = []
    try:
        for name, size in (("full", "64k"), ("small", "128k")):
            point = tmp_path / name
            point.mkdir()
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs here to fill a disk: {done.stderr.strip()}")
            mounts.append(point)
        with open(mounts[0] / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:  # ENOSPC: full
                pass
        yield mounts
    finally:
        for m in mounts:
            subprocess.run(["umount", "-l", str(m)], check=False)


def test_full_disk_is_a_clear_error_before_trials_or_while_writing_the_cache(tmp_path, tiny_disks):
    full, small = tiny_disks
    storage, cache, prep = (case_dir(tmp_path, n) for n in ("storage", "cache", "prepare"))
    out_storage, out_cache, out_prepare = parallel(
        ("tune", "exp.yaml", "--storage", str(full / "results"), "--cache-dir", str(storage / "c"), storage),
        ("tune", "exp.yaml", "--cache-dir", str(full / "cache"), "--storage", str(cache / "rr"), cache),
        ("prepare", "exp.yaml", "--cache-dir", str(small / "cache"), prep),
    )
    assert "No space left on device" in assert_user_error(out_storage, "--storage")
    nothing_created(storage, storage / "c")
    assert "No space left on device" in assert_user_error(out_cache, str(full / "cache"))
    nothing_created(cache)
    line = assert_user_error(out_prepare, "cannot write cache entry", "No space left on device")
    assert str(small / "cache") in line
    assert not [p for p in (small / "cache").iterdir() if not p.name.startswith(".probe")], \
        "the half-written entry is removed, nothing half-written stays"
