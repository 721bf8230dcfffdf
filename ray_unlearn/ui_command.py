"""`ray-unlearn ui`: the MLflow UI on a store, on a port that is free, stopped with the command."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .config import load_experiment
from .errors import ConfigError, TrackingError


def serve(args: argparse.Namespace) -> int:
    """`mlflow ui` on the store, on a port that is free (never a link to another store's UI); any stop
    signal stops the server it started."""
    import subprocess

    from . import interrupt

    experiment = None
    uri = args.tracking_uri
    if args.config:
        exp = load_experiment(args.config)
        experiment, uri = exp.experiment, uri or exp.tracking.uri
    from .tracking import Tracker, latest_sweep, resolve_uri

    uri = resolve_uri(uri)
    if not 0 < args.port < 65536:
        raise ConfigError("--port", f"must be 1-65535, got {args.port}", value=args.port)
    port = free_port(args.host, args.port)
    if port != args.port:
        print(f"port {args.port} on {args.host} is taken; using {port}", file=sys.stderr)
    url = f"http://{args.host}:{port}"
    link = url
    if experiment:  # the newest sweep's own view (not MLflow 3's GenAI overview)
        link = Tracker(uri, experiment, create=False).runs_url(url, latest_sweep(uri, experiment))
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(cmd, start_new_session=True)  # its own process group: stopped as one
    try:
        if not _answers(url, server):
            raise TrackingError(f"the MLflow UI did not start on {url} (exit code {server.poll()}); see its output above")
        print(f"MLflow UI for {uri}\nopen: {link}\n(Ctrl-C to stop)", flush=True)
        return server.wait()
    except interrupt.Interrupted as stop:
        return stop.exit_code
    finally:
        _stop_group(server)


def free_port(host: str, port: int, tries: int = 20) -> int:
    """`port`, or the next free one after it (a port another server holds would show that server's store)."""
    import socket

    for candidate in range(port, min(port + tries, 65536)):
        with socket.socket() as probe:
            try:
                probe.bind((host, candidate))
                return candidate
            except OSError:
                continue
    raise ConfigError("--port", f"ports {port}-{port + tries - 1} on {host} are all taken; give a free one with --port",
                      value=port)


def _answers(url: str, server: Any, seconds: float = 60.0) -> bool:
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            return True
        except OSError:
            time.sleep(0.3)
    return False


def _stop_group(server: Any) -> None:
    import signal
    import subprocess

    if server.poll() is not None:
        return
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
