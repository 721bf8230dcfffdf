"""The MLflow server goes away mid-sweep and comes back on the same port and
backend: the driver's BackgroundWriter buffers every write and retries it with
backoff, so every trial's child run ends FINISHED with its final metrics, its
per-epoch points and its files - none lost, none duplicated.

Own server (the session's one keeps serving the other tests): PostgreSQL when
RAY_UNLEARN_TEST_PG_DSN is set, else SQLite. The MLflow client's own HTTP
retries are cut to none so a refused connection reaches our writer at once.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
import uuid

from mlflow.tracking import MlflowClient

from ..conftest import PG_ENV, digits_config, free_port, start_mlflow_server, stop_mlflow_server
from .helpers import assert_one_child_per_trial, sweep_runs, trial_runs, write_config

N = 4
FAST_FAIL = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def test_sweep_survives_the_tracking_server_restarting(tmp_path, cache_dir, digits_refs):
    workdir = tmp_path / "server"
    workdir.mkdir()
    backend = os.environ.get(PG_ENV) or f"sqlite:///{workdir / 'mlflow.db'}"
    port = free_port()
    server = start_mlflow_server(backend, workdir, port)
    driver = None
    try:
        name = f"outage-{uuid.uuid4().hex[:8]}"
        path = write_config(tmp_path / "exp.yaml", digits_config(
            experiment=name, method="finetune",
            search={"lr": {"float": [1e-3, 1e-2], "log": True}, "epochs": {"int": [10, 16]}},
            tune={"num_samples": N, "max_concurrent": 2, "report_seconds": 0},
        ))
        log = open(tmp_path / "driver.log", "w")
        driver = subprocess.Popen(
            [sys.executable, "-m", "ray_unlearn.cli", "tune", str(path), "--tracking-uri", server.url,
             "--cache-dir", str(cache_dir), "--storage", str(tmp_path / "rr")],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **FAST_FAIL},
        )
        client = MlflowClient(server.url)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and driver.poll() is None and not trial_runs(client, name):
            time.sleep(0.2)
        assert driver.poll() is None and trial_runs(client, name), (tmp_path / "driver.log").read_text()[-3000:]
        stop_mlflow_server(server)  # mid-sweep: the first trial has just started; the restart takes seconds
        server = start_mlflow_server(backend, workdir, port)  # same port, same backend, same artifact store
        assert driver.wait(timeout=400) == 0, (tmp_path / "driver.log").read_text()[-4000:]
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        try:
            check(MlflowClient(server.url), name, (tmp_path / "driver.log").read_text(), tmp_path)
        finally:
            stop_mlflow_server(server)


def check(client: MlflowClient, name: str, output: str, tmp_path) -> None:
    assert "MLflow write failed" in output and "retrying" in output, "the outage was seen and retried"
    assert "dropped" not in output, output[-3000:]
    parents = sweep_runs(client, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = trial_runs(client, name)
    assert_one_child_per_trial(children, N)
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["ray_unlearn.status"] == "ok", run.info.run_name
        assert {"score", "val_acc", "forget_acc", "mia", "test_acc", "avg_gap"} <= set(run.data.metrics), run.data.metrics
        assert run.data.params["lr"] and run.data.params["epochs"]
        history = client.download_artifacts(run.info.run_id, "trial/history.csv", str(tmp_path / run.info.run_id))
        rows = list(csv.DictReader(io.StringIO(open(history).read())))
        points = client.get_metric_history(run.info.run_id, "epoch")
        assert len(rows) == int(run.data.params["epochs"]), "report_seconds 0: one report per epoch"
        assert sorted(int(p.value) for p in points) == sorted(int(float(r["epoch"])) for r in rows), \
            f"{run.info.run_name}: every per-epoch point reached MLflow once"
        assert len(client.get_metric_history(run.info.run_id, "val_acc")) == len(rows) + 1  # epochs + the final value
    assert sum(r.data.tags.get("best") == "true" for r in children) == 1
