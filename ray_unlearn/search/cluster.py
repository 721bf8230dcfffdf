"""Ray itself: connect to a cluster (failing fast on a dead address) or start a local instance, and
the device a trial runs on."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from .. import interrupt
from ..config import Experiment
from ..errors import DeviceError

logger = logging.getLogger(__name__)


CONNECT_TIMEOUT = 30.0  # seconds `--address` may take to answer (`--connect-timeout`)


def ensure_ray(address: str | None, num_cpus: int | None = None, connect_timeout: float | None = None) -> None:
    """Connect to `address` (a cluster; checked to answer within `connect_timeout` seconds first, since
    `ray.init` retries a dead address for many minutes) or start a local instance."""
    import ray

    if ray.is_initialized():
        return
    if address:
        wait_for_cluster(address, CONNECT_TIMEOUT if connect_timeout is None else connect_timeout)
        ray.init(address=address, log_to_driver=True)
    elif os.environ.get("RAY_ADDRESS"):  # a `ray job submit` driver: its job's cluster
        ray.init(log_to_driver=True)
    else:  # a new instance of our own, never a cluster someone started on this machine with `ray start`
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    interrupt.install()  # ray.init put its own SIGTERM handler in place of ours
    _worker_logs_to_stderr()


def _worker_logs_to_stderr() -> None:
    """What Ray forwards from workers and raylets (a lost node's dump, a trial's prints) goes to stderr:
    stdout holds the command's own tables, which scripts read. Ray's private hook; left as it is if it moved."""
    try:
        from ray._private import worker

        original = getattr(worker.print_to_stdstream, "__wrapped__", worker.print_to_stdstream)
        noise = ShutdownNoise()

        def to_stderr(data: dict, ignore_prefix: bool) -> None:
            lines = noise.drop(data.get("pid"), data.get("lines") or [])
            if lines or not data.get("lines"):
                original({**data, "lines": lines, "is_err": True}, ignore_prefix=ignore_prefix)

        to_stderr.__wrapped__ = original  # type: ignore[attr-defined]
        worker.print_to_stdstream = to_stderr  # what the error listener calls (a lost raylet's dump)
        dispatcher = worker.global_worker_stdstream_dispatcher
        dispatcher.remove_handler("ray_print_logs")
        dispatcher.add_handler("ray_print_logs", lambda data: to_stderr(data, ignore_prefix=False))
    except (ImportError, AttributeError, KeyError, TypeError) as err:
        logger.debug("Ray's worker logs stay on their own streams: %s", err)


class ShutdownNoise:
    """Drops, per worker, the traceback Ray's own SIGTERM handler prints when Ray stops an idle worker
    at the sweep's end (`SystemExit` raised inside a weakref callback, "Exception ignored in: ..."): it is
    Ray tearing down, not an error of a trial, and read as one in the driver's stderr."""

    START = "Exception ignored in"

    def __init__(self) -> None:
        self.held: dict[Any, list[str]] = {}  # pid -> the lines of a block not yet known to be the noise

    def drop(self, pid: Any, lines: list[str]) -> list[str]:
        """`lines` of worker `pid` without the noise; a block that may be it is held until its last line."""
        out: list[str] = []
        for line in lines:
            block = self.held.get(pid)
            if block is None:
                if line.startswith(self.START):
                    self.held[pid] = [line]
                else:
                    out.append(line)
                continue
            block.append(line)
            if line and not line[0].isspace() and not line.startswith(("Traceback", "During handling", "The above")):
                del self.held[pid]  # the exception's own line ends a traceback
                if not (line.startswith("SystemExit") and any("sigterm_handler" in held for held in block)):
                    out.extend(block)
        return out


def wait_for_cluster(address: str, timeout: float) -> None:
    """Return once the Ray cluster at `address` accepts a connection; ClusterError after `timeout` seconds."""
    import socket

    from ..errors import ClusterError

    target = cluster_endpoint(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(target, timeout=max(0.5, min(5.0, deadline - time.monotonic()))):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ClusterError(f"--address {address}: no Ray cluster answers at {target[0]}:{target[1]} "
                                   f"({err.strerror or err}) within {timeout:g} s; start one (`ray start --head`) or fix the "
                                   "address (--connect-timeout sets the wait)") from None
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def cluster_endpoint(address: str) -> tuple[str, int]:
    """(host, port) of the GCS (or Ray client server) `address` names; `auto` is the cluster `ray start` made here."""
    from ..errors import ClusterError

    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or _current_cluster()
        if not address:
            raise ClusterError("--address auto: no Ray cluster was started on this machine (`ray start --head`) and "
                               "RAY_ADDRESS is not set")
    bare = address.split("://", 1)[-1]
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address}: expected host:port (e.g. 10.0.0.5:6379), ray://host:port or auto")
    return host, int(port)


def _current_cluster() -> str | None:
    import tempfile

    path = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray" / "ray_current_cluster"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def default_concurrency(exp: Experiment) -> int:
    """As many trials as the cluster's resources hold (at least one)."""
    import ray

    res = ray.cluster_resources()
    want = exp.tune.resources
    slots = [res.get("CPU", 1.0) / want.cpu]
    if want.gpu > 0:
        slots.append(res.get("GPU", 0.0) / want.gpu)
    return max(1, int(math.floor(min(slots) + 1e-9)))


CPU_FALLBACK = "RAY_UNLEARN_CPU_FALLBACK"  # "1": a trial that asked for a GPU and sees none runs on the CPU


def trial_device(gpu: float) -> "Any":
    """The trial's torch device: CUDA where `tune.resources.gpu` asks for it. A worker without CUDA is an
    error, not a silent CPU run (a GPU sweep would take days on the CPU); tests that declare logical GPUs
    on a CPU machine set RAY_UNLEARN_CPU_FALLBACK=1."""
    import torch

    if gpu <= 0:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get(CPU_FALLBACK) == "1":
        return torch.device("cpu")
    raise DeviceError(f"tune.resources.gpu is {gpu:g}, but this worker sees no CUDA device (torch {torch.__version__}, "
                      f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}): the trial would train on the "
                      f"CPU. Give the workers a CUDA build of torch, or set tune.resources.gpu: 0 ({CPU_FALLBACK}=1 runs "
                      "such trials on the CPU anyway)")
