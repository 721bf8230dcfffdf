"""SIGINT, SIGTERM and SIGHUP as a state, not a crash: the first asks the work in progress to stop, a second exits.

A driver on Kubernetes gets SIGTERM on every eviction, a user presses Ctrl-C, a closed terminal
sends SIGHUP: all three stop a sweep the same graceful way. Inside `graceful()` (the sweep and
its re-check) the first signal only sets a flag that the sweep polls (`requested()`): running
trials are stopped, what finished is kept and recorded, and the command exits 128 + the signal's
number. Outside it (loading data, training references) the first signal raises `Interrupted`
where the main thread is. A second signal exits at once. The handlers are the main thread's:
`ray.init` installs its own for SIGTERM, so `graceful()` installs ours again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class Interrupted(BaseException):
    """A stop signal arrived outside a graceful section (a BaseException, like KeyboardInterrupt:
    no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    signum: int | None = None
    graceful = 0


_state = _State()


def _handler(signum: int, frame: object) -> None:
    name = signal.Signals(signum).name
    if _state.signum is not None:
        sys.stderr.write(f"\n{name} again: exiting now\n")
        sys.stderr.flush()
        os._exit(128 + signum)
    _state.signum = signum
    if _state.graceful:
        sys.stderr.write(f"\n{name}: stopping the sweep (finished trials are kept; {name} again exits at once)\n")
        sys.stderr.flush()
        return
    raise Interrupted(signum)


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP from here on (main thread only; elsewhere this does nothing)."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _handler)


@contextlib.contextmanager
def graceful() -> Iterator[None]:
    """A section whose work stops itself when `requested()`: a signal then only sets the flag."""
    install()
    _state.graceful += 1
    try:
        yield
    finally:
        _state.graceful -= 1


def requested() -> bool:
    return _state.signum is not None


def signum() -> int | None:
    return _state.signum


def exit_code() -> int:
    return 128 + (_state.signum or 0)


def reset() -> None:
    """Forget an earlier signal (a notebook running a second sweep in the same process)."""
    _state.signum = None
