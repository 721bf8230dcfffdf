"""One driver per sweep: a second `tune` of the same sweep (a retried RayJob, two `--resume`) refuses to start.

Where the sweep's storage is a path (local, or a shared filesystem such as NFS), the lock is an OS
file lock (`fcntl.flock`) on `<storage>/.locks/<sweep>.lock`: the kernel releases it when its
holder exits or is killed (`kill -9` included), so a dead driver never leaves the sweep locked.
Where the storage is a URI (`s3://...`), there is no shared filesystem to lock: the lock is a lease
in the sweep's MLflow parent run, a tag naming the driver that its holder renews every
`HEARTBEAT_SECONDS`; a lease not renewed for `LEASE_SECONDS` is stale and taken over with a warning.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .errors import UnlearnError
from .tracking.vocabulary import DRIVER_LEASE

logger = logging.getLogger(__name__)

LEASE_TAG = DRIVER_LEASE
HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 60.0  # a lease older than this: its driver is gone


class SweepLocked(UnlearnError):
    """Another driver is running this sweep."""


def holder() -> dict[str, Any]:
    """Who holds a lock: this host and process, since now."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": _dt.datetime.now().isoformat(timespec="seconds"),
            "beat": time.time(), "nonce": uuid.uuid4().hex}


def describe(info: dict[str, Any]) -> str:
    return f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, since {info.get('since', '?')}"


class FileLock:
    """The sweep's lock on a filesystem: an exclusive flock, with its holder written in the file."""

    def __init__(self, storage: str, sweep: str):
        self.path = Path(storage) / ".locks" / f"{sweep}.lock"
        self.sweep = sweep
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise SweepLocked(f"sweep {self.sweep} is already running: {describe(self._read())} holds {self.path}; "
                              "wait for it to end, or stop it (its lock ends with it)") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder()).encode())
        self._fd = fd

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


class Lease:
    """The sweep's lock where its storage is a URI: a renewed lease in the parent run's tags."""

    def __init__(self, tracker: Any, sweep: str):
        self.tracker, self.sweep = tracker, sweep
        self.mine: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        current = self._read()
        if current and time.time() - float(current.get("beat", 0)) < LEASE_SECONDS:
            raise SweepLocked(f"sweep {self.sweep} is already running: {describe(current)} (its lease in MLflow run "
                              f"{self.tracker.parent_id} was renewed {time.time() - float(current['beat']):.0f} s ago)")
        if current:
            logger.warning("sweep %s: taking over the stale lease of %s (not renewed for %.0f s)", self.sweep,
                           describe(current), time.time() - float(current.get("beat", 0)))
        self.mine = holder()
        self._write()
        time.sleep(min(2.0, HEARTBEAT_SECONDS / 5))  # two drivers writing at once: the last write wins, the other sees it
        if (self._read() or {}).get("nonce") != self.mine["nonce"]:
            raise SweepLocked(f"sweep {self.sweep} was just taken by {describe(self._read())}")
        self._thread = threading.Thread(target=self._renew, name="sweep-lease", daemon=True)
        self._thread.start()

    def _read(self) -> dict[str, Any] | None:
        text = self.tracker.parent_tag(LEASE_TAG)
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None

    def _write(self) -> None:
        self.tracker.set_parent_tag(LEASE_TAG, json.dumps(self.mine))

    def _renew(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.mine["beat"] = time.time()
            try:
                self._write()
            except Exception as err:  # noqa: BLE001 - a missed beat; the lease lasts LEASE_SECONDS
                logger.warning("could not renew the lease of sweep %s: %s", self.sweep, err)

    def release(self) -> None:
        self._stop.set()
        if self.mine is not None:
            try:
                self.tracker.set_parent_tag(LEASE_TAG, "")
            except Exception as err:  # noqa: BLE001 - it expires on its own
                logger.warning("could not release the lease of sweep %s: %s", self.sweep, err)
            self.mine = None
