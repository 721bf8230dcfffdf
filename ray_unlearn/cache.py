"""A content-addressed, checksummed store for prepared references and memoised tensors.

Entries are directories named by a key (a hash of exactly the fields their
content depends on): `<root>/<key>/{meta.json, <name>.pt ...}`. `meta.json`
holds the key, the SHA-256 of every `.pt` file, the caller's metadata (e.g.
the reference metrics) and a SHA-256 of its own canonical content, so every
byte of an entry is covered by a checksum. An entry is written in a temporary
directory renamed into place, so a reader never sees half of one.

On read an entry is verified before anything is loaded (`weights_only=True`):
a missing, extra, truncated or edited file, an edited metric, another key's
entry or a plain file in its place is reported in one warning, removed and
rebuilt once; the rebuilt entry is then loaded.

`get_or_build` checks and builds an entry under an OS file lock
(`fcntl.flock` on `<root>/.locks/<key>.lock`), so two processes wanting the
same missing entry build it once: the second waits, then loads the first's.
The kernel drops the lock when its holder dies, `kill -9` included.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import pickle
import re
import shutil
import socket
import stat
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import torch

from .errors import CacheError

try:
    import fcntl
except ImportError:  # not POSIX: entries are still verified, concurrent builders are not serialised
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

META = "meta.json"
FORMAT = 2  # 1: per-file checksums only (meta.json itself unchecked); 2: meta.json checksums itself
LOCKS = ".locks"
_HOST = re.sub(r"[^A-Za-z0-9_.]+", "_", socket.gethostname()) or "host"
_NO_LOCKS: set[str] = set()  # roots on filesystems without flock (told once per process)
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR)  # rename onto something already there


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def default_cache_dir() -> Path:
    return Path(os.environ.get("RAY_UNLEARN_CACHE", Path.home() / ".cache" / "ray_unlearn")).expanduser()


def stable_hash(fields: Mapping[str, Any], length: int = 16) -> str:
    """Hash of a JSON-able mapping, independent of key order."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _tensor_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _seal(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(text of meta.json, the document as a reader parses it) with `checksum` = SHA-256 of the rest.

    The checksum is taken over the document as read back, so JSON's conversions (tuples to
    lists, integer keys to strings) cannot make a reader's recomputation differ."""
    readback = json.loads(_canonical(doc))
    readback["checksum"] = hashlib.sha256(_canonical(readback)).hexdigest()
    return json.dumps(readback, indent=1, sort_keys=True), readback


class Corrupt(Exception):
    """What is wrong with an entry (internal: `get` reports it and removes the entry)."""


class Entry(NamedTuple):
    """What `get_or_build` returns: the entry's tensors, its metadata, and whether it was built now."""

    tensors: dict[str, Any]
    meta: dict[str, Any]
    built: bool


class Store:
    """Directory of checksummed entries: `<root>/<key>/{meta.json, *.pt}`, built once under a lock."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def entry(self, key: str) -> Path:
        return self.root / key

    def check_writable(self) -> None:
        """Fail early, before any training, if the store cannot be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as err:
            raise CacheError(f"cache directory {self.root} is not writable: {err.strerror or err}") from None

    # --- reading ---------------------------------------------------------------------------

    def get(self, key: str, names: list[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(tensors, meta) of a verified entry; None if absent, or if corrupt (then reported and removed).

        `meta` is the caller's metadata plus `key`."""
        try:
            return self._read(key, names)
        except Corrupt as err:
            logger.warning("cache entry %s is corrupt (%s); removing it so it is rebuilt", self.entry(key), err)
            try:
                self._discard(key)
            except OSError as why:  # a read-only cache: building it again will say so
                logger.warning("cannot remove cache entry %s: %s", self.entry(key), why.strerror or why)
            return None

    def _read(self, key: str, names: list[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        found = self._verify(key)
        if found is None:
            return None
        doc, blobs = found
        out = {}
        for name in names:
            if f"{name}.pt" not in blobs:
                raise Corrupt(f"it has no {name}.pt")
            try:
                out[name] = torch.load(io.BytesIO(blobs[f"{name}.pt"]), weights_only=True, map_location="cpu")
            except (RuntimeError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as err:
                # a file whose checksum matches but that weights_only loading refuses
                raise Corrupt(f"{name}.pt cannot be loaded as weights: {type(err).__name__}") from None
        return out, {**doc["meta"], "key": key}

    def _verify(self, key: str) -> tuple[dict[str, Any], dict[str, bytes]] | None:
        """(meta.json's document, each .pt file's bytes) of an intact entry, None if there is none;
        Corrupt saying what is wrong otherwise."""
        path = self.entry(key)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return None
        except OSError as err:
            raise Corrupt(f"cannot be read: {err.strerror or err}") from None
        if not stat.S_ISDIR(mode):
            raise Corrupt("a file, not an entry directory, is in its place")
        try:
            present = set(os.listdir(path))
            if META not in present:
                raise Corrupt(f"{META} is missing")
            doc = json.loads((path / META).read_bytes())
        except OSError as err:
            raise Corrupt(f"{META} cannot be read: {err.strerror or err}") from None
        except ValueError:
            raise Corrupt(f"{META} is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("checksum"), str):
            raise Corrupt(f"{META} is not a format-{FORMAT} entry (written by another version, or not by this store)")
        body = {k: v for k, v in doc.items() if k != "checksum"}
        if hashlib.sha256(_canonical(body)).hexdigest() != doc["checksum"]:
            raise Corrupt(f"{META} fails its checksum (its content was edited)")
        if doc.get("key") != key:
            raise Corrupt(f"it holds the entry of another key, {doc.get('key')!r}")
        files = doc.get("files")
        if not isinstance(files, dict) or not isinstance(doc.get("meta"), dict):
            raise Corrupt(f"{META} lacks its file list or metadata")
        missing = sorted(set(files) - present)
        extra = sorted(present - set(files) - {META})
        if missing:
            raise Corrupt(f"{', '.join(missing)} missing")
        if extra:
            raise Corrupt(f"unexpected file(s) {', '.join(extra)}")
        blobs = {}
        for name, digest in sorted(files.items()):
            try:
                data = (path / name).read_bytes()
            except OSError as err:
                raise Corrupt(f"{name} cannot be read: {err.strerror or err}") from None
            if hashlib.sha256(data).hexdigest() != digest:
                raise Corrupt(f"{name} fails its checksum (truncated or edited)")
            blobs[name] = data
        return doc, blobs

    # --- writing ---------------------------------------------------------------------------

    def put(self, key: str, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
        """Write an entry atomically. An intact entry already there (a concurrent writer) is kept;
        a broken one is replaced.

        `put` takes no lock: call it inside `lock(key)` (as `get_or_build` does) to build once.
        A full disk or a vanished directory is a CacheError naming the entry, not a traceback.
        """
        try:
            return self._put(key, tensors, meta)
        except OSError as err:
            raise CacheError(f"cannot write cache entry {self.entry(key)}: {err.strerror or err}") from None

    def _scratch(self, key: str) -> Path:
        """A temporary path named after its writer (host, pid), so `remove_abandoned` can tell a dead one's."""
        return self.root / f".tmp-{key}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex}"

    def _put(self, key: str, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_abandoned(key)
        tmp = self._scratch(key)
        tmp.mkdir()
        try:
            files = {}
            for name, obj in tensors.items():
                data = _tensor_bytes(obj)
                (tmp / f"{name}.pt").write_bytes(data)
                files[f"{name}.pt"] = hashlib.sha256(data).hexdigest()
            text, _ = _seal({"format": FORMAT, "key": key, "files": files, "meta": dict(meta)})
            (tmp / META).write_text(text)
            self._install(tmp, key)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.entry(key)

    def _install(self, tmp: Path, key: str) -> None:
        """Rename the finished `tmp` into place; whatever is there is kept if intact, else replaced."""
        final = self.entry(key)
        for _ in range(3):
            try:
                os.rename(tmp, final)
                return
            except OSError as err:
                if err.errno not in _TAKEN:
                    raise
            try:
                self._verify(key)
            except Corrupt as problem:
                logger.warning("cache entry %s is corrupt (%s); replacing it", final, problem)
                self._discard(key)
                continue
            logger.info("cache entry %s was written concurrently; keeping the existing one", key)
            return
        raise OSError(errno.EEXIST, "another writer keeps replacing it")

    def _discard(self, key: str) -> None:
        """Remove whatever is at the entry's path, atomically for readers (renamed away, then deleted).

        OSError if it cannot be moved (e.g. a read-only cache)."""
        trash = self._scratch(key)
        try:
            os.rename(self.entry(key), trash)
        except FileNotFoundError:
            return  # someone else removed it
        if trash.is_dir() and not trash.is_symlink():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink(missing_ok=True)

    def remove_abandoned(self, key: str) -> list[Path]:
        """Delete half-written `.tmp-<key>-*` directories left by killed writers on this host.

        A temporary directory is named after its writer's host and process id; only those
        of this host whose process no longer runs are removed (a live writer keeps its own).
        """
        removed = []
        prefix = f".tmp-{key}-{_HOST}-"
        for tmp in self.root.glob(f".tmp-{key}-*"):
            pid = tmp.name[len(prefix):].split("-", 1)[0] if tmp.name.startswith(prefix) else ""
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
                logger.info("removed %s, left half-written by a killed process", tmp)
        return removed

    # --- building once ---------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the exclusive lock of `key` (`fcntl.flock` on `<root>/.locks/<key>.lock`).

        Another process (or thread) asking for the same key waits until it is released; the kernel
        releases it when the holder exits or is killed. Not re-entrant: do not lock a key twice.
        The lock file is removed on release (waiters then retry on a fresh one)."""
        if fcntl is None:
            yield
            return
        locks = self.root / LOCKS
        path = locks / f"{key}.lock"
        fd = self._acquire(key, locks, path)
        try:
            yield
        finally:
            if fd is not None:
                with contextlib.suppress(OSError):
                    path.unlink()  # still ours: a waiter that gets the old inode sees it gone and retries
                with contextlib.suppress(OSError):
                    locks.rmdir()  # only when no other lock is held
                os.close(fd)

    def _acquire(self, key: str, locks: Path, path: Path) -> int | None:
        """The descriptor of the locked file; None where the filesystem has no locks (warned once)."""
        told = False
        while True:
            try:
                locks.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                continue  # .locks was removed between mkdir and open by a releasing holder
            except OSError as err:
                raise CacheError(f"cannot lock cache entry {self.entry(key)}: {err.strerror or err}") from None
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not told:
                        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                        logger.warning("cache entry %s is being built by %s; waiting for it", self.entry(key), holder)
                        told = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(path).st_ino
                except FileNotFoundError:
                    current = None
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise CacheError(f"cannot lock cache entry {self.entry(key)}: {err.strerror or err}") from None
                if str(self.root) not in _NO_LOCKS:
                    logger.warning("the cache directory %s has no file locks (%s): processes that need the same "
                                   "entry at once may each build it", self.root, err.strerror)
                _NO_LOCKS.add(str(self.root))
                return None
            except BaseException:  # e.g. Ctrl-C while waiting
                os.close(fd)
                raise
            if current != os.fstat(fd).st_ino:  # released and removed while we waited: lock the current file
                os.close(fd)
                continue
            with contextlib.suppress(OSError):  # who holds it, for a waiter's message (cosmetic)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{_HOST} pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
            return fd

    def get_or_build(self, key: str, names: list[str],
                     build: Callable[[], tuple[Mapping[str, Any], Mapping[str, Any]]]) -> Entry:
        """The verified entry `key`, built once if absent or corrupt.

        `build()` returns (tensors by name, JSON-able metadata); it runs under `lock(key)`, so of
        several processes wanting the same missing entry one builds and the others wait, then load
        it. A corrupt entry is reported and removed by the read, rebuilt here, and stored.
        """
        found = self.get(key, names)
        if found is not None:
            return Entry(*found, built=False)
        self.check_writable()
        with self.lock(key):
            found = self.get(key, names)  # built by another process while we waited
            if found is not None:
                return Entry(*found, built=False)
            tensors, meta = build()
            if set(tensors) != set(names):
                raise ValueError(f"build() of cache entry {key} returned {sorted(tensors)}, expected {sorted(names)}")
            self.put(key, tensors, meta)
        _, readback = _seal({"meta": dict(meta)})
        return Entry(dict(tensors), {**readback["meta"], "key": key}, built=True)

    def memo(self, scope: str) -> Callable[[str, Mapping[str, Any], Callable[[], dict[str, torch.Tensor]]], dict[str, torch.Tensor]]:
        """A method memo whose results are stored under `scope` (e.g. a references key), computed once."""

        def memo(name: str, key: Mapping[str, Any], compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
            entry = f"{scope}-{name}-{stable_hash(dict(key))}"
            built = self.get_or_build(entry, ["tensors"],
                                      lambda: ({"tensors": compute()}, {"name": name, "fields": dict(key), "scope": scope}))
            return built.tensors["tensors"]

        return memo
