"""MLflow writes off the driver's loop: one thread, in order, each retried with backoff."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

from ..errors import TrackingError

logger = logging.getLogger(__name__)

# MLflow error codes of a server that is down, restarting, overloaded or briefly locked: worth retrying.
# Anything else (a bad value, a missing run, refused credentials, a bug of ours) fails at once.
RETRYABLE_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "IO_ERROR", "SERVICE_UNDER_MAINTENANCE", "DEADLINE_EXCEEDED",
                   "ABORTED", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED", "COULD_NOT_ACQUIRE_LOCK", "UNPARSEABLE_HTTP_ERROR"}


def retryable(err: BaseException) -> bool:
    """Whether a failed MLflow call may succeed later: network and server errors, not bad requests."""
    if isinstance(err, (OSError, TimeoutError)):  # connection refused/reset, requests' errors, a full disk
        return True
    if type(err).__module__.split(".")[0] == "sqlalchemy":  # a local store's "database is locked"
        return True
    code = getattr(err, "error_code", None)
    return isinstance(code, str) and code in RETRYABLE_CODES


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else ""


class BackgroundWriter:
    """One thread that performs MLflow writes in order, retrying each with backoff.

    Trial events arrive in Ray Tune's driver loop, which schedules the next trial only
    after its callbacks return: queued, an MLflow round trip no longer delays scheduling.
    A tracking server that goes away is retried (0.5 s, 1 s, 2 s, ... every MAX_DELAY s, up to
    `patience` seconds per write); meanwhile later writes wait in the queue, so nothing is lost
    or reordered. A write still failing after that, or failing for a reason a retry cannot fix
    (a rejected value, a missing run: `retryable`), is logged and dropped.
    """

    MAX_DELAY = 10.0  # a server back from an outage is written to within this many seconds

    def __init__(self, patience: float = 600.0):
        self.patience = patience
        self.queue: queue.Queue = queue.Queue()
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, name="mlflow-writer", daemon=True)
        self.thread.start()

    def submit(self, fn: Callable, *args: Any, **kwargs: Any) -> None:
        self.queue.put((fn, args, kwargs))

    def drain(self) -> None:
        self.queue.join()

    def _run(self) -> None:
        while True:
            fn, args, kwargs = self.queue.get()
            try:
                self._attempt(fn, args, kwargs)
            finally:
                self.queue.task_done()

    def _attempt(self, fn: Callable, args: tuple, kwargs: dict, *, raise_on_failure: bool = False) -> Any:
        waited, delay = 0.0, 0.5
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - a server or network error: wait and retry
                if waited >= self.patience or not retryable(err):
                    message = f"{getattr(fn, '__name__', fn)}: {type(err).__name__}: {_first_line(err)}"
                    if raise_on_failure:
                        if not retryable(err):
                            raise
                        raise TrackingError(f"MLflow still failing after {waited:.0f} s of retries: {message}") from None
                    self.failures.append(message)
                    logger.error("MLflow write dropped after %.0f s of retries: %s", waited, message)
                    return None
                logger.warning("MLflow write failed (%s); retrying in %.1f s", type(err).__name__, delay)
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, self.MAX_DELAY)

    def call(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run `fn` now, on the calling thread, after every queued write; retried like them, raising if it never succeeds."""
        self.drain()
        return self._attempt(fn, args, kwargs, raise_on_failure=True)
