"""One exception family, so the CLI can tell a user's mistake from a bug.

Every error a user can cause by what they wrote (a YAML file, a flag, a data
directory) derives from `UnlearnError`; the CLI prints it in one or two lines
and exits with code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


def printable(text: str) -> str:
    """`text` on one line, control and invisible characters escaped (`\\n`, `\\x1b`): a key or value
    taken from a user's file must not break the one-line error or drive the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class UnlearnError(Exception):
    """Base class for errors caused by user input or environment."""

    exit_code = 2


class ConfigError(UnlearnError):
    """A configuration file or override is malformed.

    The message names the file, the key path, the bad value and what is allowed:
    ``search_spaces/x.yaml: search.lr: low 0.1 is above high 0.01``.
    """

    def __init__(self, key: str, problem: str, *, source: str | None = None, value: Any = ...):
        self.key = key
        self.problem = problem
        self.source = source
        self.value = value
        super().__init__(self._render())

    def __reduce__(self) -> tuple:
        # Ray copies and pickles errors raised in workers; the keyword-only fields must travel too
        return _config_error, (self.key, self.problem, self.source, self.value)

    def _render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        key = f"{self.key}: " if self.key else ""
        return printable(f"{where}{key}{self.problem}")

    def with_source(self, source: str) -> "ConfigError":
        """The same error, attributed to a file (config parsing doesn't know the path)."""
        if self.source:
            return self
        return ConfigError(self.key, self.problem, source=source, value=self.value)


def _config_error(key: str, problem: str, source: str | None, value: Any) -> ConfigError:
    return ConfigError(key, problem, source=source, value=value)


class DataError(UnlearnError):
    """A dataset cannot be loaded or a forget request cannot be honoured."""


class CacheError(UnlearnError):
    """The reference cache is missing, unreadable or fails its checksum."""


class TrackingError(UnlearnError):
    """The MLflow store cannot be reached or holds nothing matching the request."""


class MethodError(UnlearnError):
    """An unlearning method was given inputs it cannot work with."""


class ClusterError(UnlearnError):
    """The Ray cluster named by --address cannot be reached."""


class DeviceError(UnlearnError):
    """A trial was given a device it cannot use (a GPU share on a worker without CUDA)."""
