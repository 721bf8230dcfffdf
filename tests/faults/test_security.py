"""docs/design.md#security, checked on the code and on real runs: safe loaders only,
cache files verified before loading, the UI on loopback, Ray's token
authentication left alone, secrets never logged."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from ray_unlearn import cache as cache_module
from ray_unlearn.cache import Store
from ray_unlearn.config import parse_experiment
from ray_unlearn.references import prepare

from ..conftest import digits_config, free_port, run_cli
from .helpers import trial_runs, write_config

PACKAGE = Path(__file__).resolve().parents[2] / "ray_unlearn"
PY_FILES = sorted(PACKAGE.rglob("*.py"))

# Calls that unpickle (or execute) what they read, by their fully qualified name.
UNSAFE = {"pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads", "cPickle.load", "marshal.load",
          "marshal.loads", "shelve.open", "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads", "joblib.load",
          "pandas.read_pickle", "yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all",
          "torch.serialization.load", "numpy.lib.format.read_array", "builtins.eval", "builtins.exec"}


def qualified_calls(path: Path):
    """(qualified name, call node) of every call, resolving `import x as y` and `from x import y`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    alias = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                alias[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                alias[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        parts, f = [], node.func
        while isinstance(f, ast.Attribute):
            parts.append(f.attr)
            f = f.value
        if isinstance(f, ast.Name):
            head = alias.get(f.id, "builtins." + f.id if f.id in ("eval", "exec") else f.id)
            yield ".".join([head, *reversed(parts)]), node


def test_every_package_file_loads_yaml_and_tensors_only_safely():
    """Stronger than tests/test_layering.py's grep: aliases and `from x import load` count too,
    and every YAML loader named is checked to be a SafeLoader subclass at run time."""
    import importlib

    assert len(PY_FILES) > 40, "the scan sees the whole package"
    yaml_loaders = []
    for path in PY_FILES:
        module = "ray_unlearn." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for name, call in qualified_calls(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{call.lineno}"
            assert name not in UNSAFE, f"{where}: {name}"
            kw = {k.arg: k.value for k in call.keywords}
            if name in ("torch.load",):
                assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, f"{where}: {name}"
            if name in ("numpy.load", "np.load"):
                assert "allow_pickle" not in kw or getattr(kw["allow_pickle"], "value", True) is False, where
            if name in ("yaml.load", "yaml.load_all", "yaml.compose"):
                loader = kw.get("Loader") or (call.args[1] if len(call.args) > 1 else None)
                assert isinstance(loader, ast.Name), f"{where}: yaml loader must be named"
                yaml_loaders.append((module, loader.id, where))
    for module, loader, where in yaml_loaders:
        cls = getattr(importlib.import_module(module), loader)
        assert issubclass(cls, yaml.SafeLoader) and not issubclass(cls, (yaml.FullLoader, yaml.UnsafeLoader)), where
    assert yaml_loaders, "the config reader was found"


class Payload:
    """Unpickling this creates a file: what a poisoned cache entry would do to an unsafe loader."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


SMALL = dict(train={"epochs": 1, "lr": 0.05, "batch_size": 64})


def test_a_poisoned_cache_entry_is_never_unpickled_and_is_rebuilt(tmp_path):
    exp = parse_experiment(digits_config(**SMALL))
    store = Store(tmp_path / "cache")
    refs, _ = prepare(exp, store, torch.device("cpu"))
    entry = store.entry(refs.key)
    marker = tmp_path / "PWNED"
    torch.save(Payload(str(marker)), entry / "original.pt")  # the checksum in meta.json no longer matches
    assert store.get(refs.key, ["original", "retrain"]) is None and not entry.exists()
    assert not marker.exists()

    again, trained = prepare(exp, store, torch.device("cpu"))
    assert trained == ["original", "retrain"]
    torch.save(Payload(str(marker)), entry / "original.pt")  # now forge the checksums too: the file's and meta.json's own
    meta = json.loads((entry / "meta.json").read_text())
    meta["files"]["original.pt"] = hashlib.sha256((entry / "original.pt").read_bytes()).hexdigest()
    text, _ = cache_module._seal({k: v for k, v in meta.items() if k != "checksum"})
    (entry / "meta.json").write_text(text)
    assert store.get(refs.key, ["original", "retrain"]) is None, "weights_only loading refuses it: corrupt, removed"
    assert not marker.exists() and not entry.exists()
    _, trained = prepare(exp, store, torch.device("cpu"))
    assert trained == ["original", "retrain"] and not marker.exists()


def listening(port: int) -> list[str]:
    """Local addresses of sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if v6:
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.append(socket.inet_ntop(socket.AF_INET6, raw))
                else:
                    found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
    return found


def outward_ip() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def test_ui_binds_to_loopback_only_unless_told_otherwise(tmp_path):
    from ray_unlearn.cli import build_parser

    assert build_parser().parse_args(["ui"]).host == "127.0.0.1"
    assert build_parser().parse_args(["ui", "--host", "0.0.0.0"]).host == "0.0.0.0"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ray_unlearn.cli", "ui", "--tracking-uri", f"sqlite:///{tmp_path / 'ui.db'}",
                             "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not listening(port):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.3)
        addresses = listening(port)
        assert addresses and set(addresses) <= {"127.0.0.1"}, addresses
        while time.monotonic() < deadline:  # `ui` prints its link once the server answers
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        time.sleep(1.0)
        ip = outward_ip()
        if ip:
            with pytest.raises(OSError):
                socket.create_connection((ip, port), timeout=3).close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert f"open: http://127.0.0.1:{port}" in proc.stdout.read()


def test_the_package_never_turns_ray_token_authentication_off():
    for path in PACKAGE.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".yaml", ".yml", ".json", ".txt", ".cfg", ".toml", ".sh"):
            assert "RAY_AUTH_MODE" not in path.read_text(errors="replace"), path
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    code = ("import os, ray_unlearn.cli, ray_unlearn.commands, ray_unlearn.workflow, ray_unlearn.search, ray_unlearn.tracking; "
            "print(os.environ.get('RAY_AUTH_MODE', 'unset'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "unset", "importing the package leaves Ray's authentication mode alone"


SECRETS = {"AWS_SECRET_ACCESS_KEY": "fake-secret-XYZ-7d1c", "AWS_ACCESS_KEY_ID": "FAKEKEYID-3b9a",
           "MLFLOW_TRACKING_USERNAME": "fake-user-51e0", "MLFLOW_TRACKING_PASSWORD": "fake-password-8c2f",
           "MLFLOW_TRACKING_TOKEN": "fake-token-0a4d"}


def test_credentials_in_the_environment_never_reach_mlflow_the_logs_or_the_sweep_files(tmp_path, mlflow_server, cache_dir, digits_refs):
    name = f"secrets-{uuid.uuid4().hex[:8]}"
    path = write_config(tmp_path / "exp.yaml", digits_config(
        experiment=name, method="gradient_ascent", search={"lr": {"float": [1e-4, 1e-3], "log": True}},
        tune={"num_samples": 2, "max_concurrent": 2}, tracking={"log_models": True},
    ))
    out = run_cli("tune", str(path), "--tracking-uri", mlflow_server.url, "--cache-dir", str(cache_dir),
                  "--storage", str(tmp_path / "rr"), cwd=tmp_path, env=SECRETS)
    assert out.returncode == 0, out.stderr[-3000:]
    leaks = []

    def scan(where: str, blob) -> None:
        data = blob if isinstance(blob, bytes) else str(blob).encode()
        leaks.extend(f"{where}: {k}" for k, v in SECRETS.items() if v.encode() in data)

    scan("stdout", out.stdout)
    scan("stderr", out.stderr)
    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(name)
    scan("experiment tags", experiment.tags)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and len(trial_runs(client, name)) == 2
    for run in runs:
        label = run.info.run_name
        scan(f"{label} params", run.data.params)
        scan(f"{label} tags", run.data.tags)
        scan(f"{label} metric names", list(run.data.metrics))
        scan(f"{label} run name", run.info.run_name)
        local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "artifacts" / run.info.run_id)))
        files = [p for p in local.rglob("*") if p.is_file()]
        assert files, f"{label} has artifacts to check"
        for f in files:
            scan(f"{label} artifact {f.relative_to(local)}", f.read_bytes())
    for f in (tmp_path / "rr").rglob("*"):  # Ray Tune's experiment state, results and checkpoints
        if f.is_file():
            scan(f"sweep file {f.relative_to(tmp_path)}", f.read_bytes())
    assert not leaks, leaks
