"""A content-addressed, checksummed store for prepared references and memoised tensors.

Entries are directories named by a key (a hash of exactly the fields their
content depends on). Writes go to a temporary directory renamed into place,
so a reader never sees half an entry; every file's SHA-256 is recorded in
`meta.json` and verified before anything is loaded (`weights_only=True`).
A corrupt entry is reported, removed and rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .errors import CacheError

logger = logging.getLogger(__name__)

META = "meta.json"
_HOST = re.sub(r"[^A-Za-z0-9_.]+", "_", socket.gethostname()) or "host"


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


class Store:
    """Directory of checksummed entries: `<root>/<key>/{meta.json, *.pt}`."""

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

    def put(self, key: str, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
        """Write an entry atomically. If another process won the race, keep theirs.

        A full disk or a vanished directory is a CacheError naming the entry, not a traceback.
        """
        try:
            return self._put(key, tensors, meta)
        except OSError as err:
            raise CacheError(f"cannot write cache entry {self.entry(key)}: {err.strerror or err}") from None

    def _put(self, key: str, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_abandoned(key)
        tmp = self.root / f".tmp-{key}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            checksums = {}
            for name, obj in tensors.items():
                data = _tensor_bytes(obj)
                (tmp / f"{name}.pt").write_bytes(data)
                checksums[f"{name}.pt"] = hashlib.sha256(data).hexdigest()
            (tmp / META).write_text(json.dumps({**meta, "key": key, "sha256": checksums}, indent=1, sort_keys=True))
            final = self.entry(key)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.exists():
                    raise
                logger.info("cache entry %s was written concurrently; keeping the existing one", key)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.entry(key)

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

    def get(self, key: str, names: list[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(tensors, meta) of a verified entry, or None if absent or corrupt (then removed)."""
        path = self.entry(key)
        if not (path / META).exists():
            return None
        try:
            meta = json.loads((path / META).read_text())
            out = {}
            for name in names:
                data = (path / f"{name}.pt").read_bytes()
                if hashlib.sha256(data).hexdigest() != meta["sha256"][f"{name}.pt"]:
                    raise CacheError(f"{name}.pt fails its checksum")
                out[name] = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
            return out, meta
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError, CacheError) as err:
            # (UnpicklingError: a file whose checksum matches but that weights_only loading refuses)
            logger.warning("cache entry %s is corrupt (%s); removing it so it is rebuilt", path, err)
            shutil.rmtree(path, ignore_errors=True)
            return None

    def memo(self, scope: str) -> Callable[[str, Mapping[str, Any], Callable[[], dict[str, torch.Tensor]]], dict[str, torch.Tensor]]:
        """A method memo whose results are stored under `scope` (e.g. a references key)."""

        def memo(name: str, key: Mapping[str, Any], compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
            entry = f"{scope}-{name}-{stable_hash(dict(key))}"
            found = self.get(entry, ["tensors"])
            if found is not None:
                return found[0]["tensors"]
            tensors = compute()
            self.put(entry, {"tensors": tensors}, {"name": name, "fields": dict(key), "scope": scope})
            stored = self.get(entry, ["tensors"])  # if a concurrent trial won the race, use its copy
            return stored[0]["tensors"] if stored is not None else tensors

        return memo
