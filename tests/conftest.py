"""Shared, real test services: a local Ray instance, an MLflow tracking server
process on 127.0.0.1 (PostgreSQL behind it when RAY_UNLEARN_TEST_PG_DSN is set,
else SQLite), and digits references prepared once per session."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # tests only: token auth stays on for users
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# tests declare logical GPUs on a CPU machine: their trials run on the CPU (search.trial_device)
os.environ.setdefault("RAY_UNLEARN_CPU_FALLBACK", "1")
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"

PG_ENV = "RAY_UNLEARN_TEST_PG_DSN"
REPO = Path(__file__).resolve().parents[1]


def pytest_report_header(config):
    if os.environ.get(PG_ENV):
        return f"MLflow test server backend: PostgreSQL ({PG_ENV} is set)"
    return f"MLflow test server backend: SQLite ({PG_ENV} is not set; .ci/run sets it to use PostgreSQL)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MlflowServer:
    url: str
    backend: str
    artifacts: Path
    proc: subprocess.Popen


def start_mlflow_server(backend: str, workdir: Path, port: int | None = None) -> MlflowServer:
    port = port or free_port()
    artifacts = workdir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "mlflow-server.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
         "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited ({proc.returncode}): {(workdir / 'mlflow-server.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return MlflowServer(url, backend, artifacts, proc)
        except OSError:
            time.sleep(0.5)
    stop_mlflow_server(MlflowServer(url, backend, artifacts, proc))
    raise RuntimeError("mlflow server did not answer /health within 120 s")


def stop_mlflow_server(server: MlflowServer) -> None:
    try:
        os.killpg(server.proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> MlflowServer:
    """A real `mlflow server` on 127.0.0.1 for the whole session (per pytest-xdist worker). Workers share one
    PostgreSQL database: the servers start one at a time, so its tables are created once."""
    import fcntl
    import tempfile

    workdir = tmp_path_factory.mktemp("mlflow-server")
    backend = os.environ.get(PG_ENV) or f"sqlite:///{workdir / 'mlflow.db'}"
    with open(Path(tempfile.gettempdir()) / "ray_unlearn-test-mlflow-start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = start_mlflow_server(backend, workdir)
    yield server
    stop_mlflow_server(server)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance shared by the in-process sweep tests: 2 CPUs and 2 declared
    GPUs (none exist: trials packed onto them must fall back to the CPU)."""
    import ray

    # address="local": our own instance, never a cluster another test (or pytest worker) started with `ray start`
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One reference cache per session, so digits references are trained once."""
    return tmp_path_factory.mktemp("cache")


def digits_config(**sections) -> dict:
    """A small experiment dict: digits, class 0 forgotten, the digits recipe (docs/references.md#recipes)."""
    raw = {
        "experiment": "test-digits",
        "data": {"dataset": "digits", "forget": {"kind": "class", "classes": [0]}, "seed": 0},
        "model": {"arch": "small_cnn"},
        "train": {"epochs": 60, "lr": 0.05, "batch_size": 64},
        "method": "finetune",
        "fixed": {},
        "search": {},
        "tune": {"num_samples": 2, "resources": {"cpu": 1, "gpu": 0}},
    }
    for key, value in sections.items():
        raw[key] = value
    return raw


@pytest.fixture(scope="session")
def digits_refs(cache_dir):
    """Class-wise digits references (trained once per session, then cached)."""
    import torch

    from ray_unlearn.cache import Store
    from ray_unlearn.config import parse_experiment
    from ray_unlearn.references import prepare

    torch.set_num_threads(1)
    exp = parse_experiment(digits_config())
    refs, _ = prepare(exp, Store(cache_dir), torch.device("cpu"))
    return refs


@pytest.fixture(scope="session")
def digits_random_refs(cache_dir):
    """Random-10% digits references."""
    import torch

    from ray_unlearn.cache import Store
    from ray_unlearn.config import parse_experiment
    from ray_unlearn.references import prepare

    exp = parse_experiment(digits_config(data={"dataset": "digits", "forget": {"kind": "random", "fraction": 0.1}, "seed": 0}))
    refs, _ = prepare(exp, Store(cache_dir), torch.device("cpu"))
    return refs


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `ray-unlearn` as a user would, in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ray_unlearn.cli", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


QUALITY_TABLES: list[str] = []  # filled by tests/methods/test_quality.py, printed after the run


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker hands its tables to the controller
        session.config.workeroutput["quality_tables"] = list(QUALITY_TABLES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    QUALITY_TABLES.extend(getattr(node, "workeroutput", {}).get("quality_tables", []))


def pytest_terminal_summary(terminalreporter):
    for text in QUALITY_TABLES:
        terminalreporter.write_line("")
        for line in text.splitlines():
            terminalreporter.write_line(line)
