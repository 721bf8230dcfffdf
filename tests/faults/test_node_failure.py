"""A worker node dies mid-sweep: its trial is restarted on the surviving node
(tune.max_failures), the sweep finishes with every trial and one child run each.

The cluster runs in a helper process (cluster_holder.py) that the test drives
through its stdin; the sweep is `ray-unlearn tune --address` as a user runs it.
With 1 CPU on each node and two 1-CPU trials at a time, once two child runs are
RUNNING one of them is on the worker: that is when the worker is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from mlflow.tracking import MlflowClient

from ..conftest import digits_config
from .helpers import assert_one_child_per_trial, trial_runs, write_config

N = 4
HOLDER = Path(__file__).with_name("cluster_holder.py")


def test_worker_node_killed_mid_sweep_loses_no_trial_and_duplicates_no_run(tmp_path, mlflow_server, cache_dir, digits_refs):
    holder = subprocess.Popen([sys.executable, str(HOLDER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    driver = None
    try:
        first = holder.stdout.readline().split()
        assert first[:1] == ["address"], "the cluster did not start"
        address, worker_id = first[1], first[5]
        name = f"node-loss-{uuid.uuid4().hex[:8]}"
        path = write_config(tmp_path / "exp.yaml", digits_config(
            experiment=name, method="finetune",
            search={"lr": {"float": [1e-3, 1e-2], "log": True}, "epochs": {"int": [30, 40]}},
            tune={"num_samples": N, "max_concurrent": 2, "max_failures": 2, "resources": {"cpu": 1, "gpu": 0}},
        ))
        log = open(tmp_path / "driver.log", "w")
        driver = subprocess.Popen(
            [sys.executable, "-m", "ray_unlearn.cli", "tune", str(path), "--address", address, "--tracking-uri", mlflow_server.url,
             "--cache-dir", str(cache_dir), "--storage", str(tmp_path / "rr")],
            cwd=tmp_path, stdout=open(tmp_path / "driver.out", "w"), stderr=log, start_new_session=True,
        )
        client = MlflowClient(mlflow_server.url)
        deadline = time.monotonic() + 180
        running = []
        while time.monotonic() < deadline and driver.poll() is None:
            runs = trial_runs(client, name)
            running = [r for r in runs if r.info.status == "RUNNING"]
            if len(running) >= 2:
                break
            time.sleep(0.2)
        assert len(running) >= 2, (tmp_path / "driver.log").read_text()[-3000:]
        assert not any(r.info.status == "FINISHED" for r in trial_runs(client, name)), "trials too short to kill one mid-run"
        holder.stdin.write("kill-worker\n")
        holder.stdin.flush()
        assert holder.stdout.readline().split() == ["killed", worker_id]
        assert driver.wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()[-4000:]
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        if holder.poll() is None:
            holder.stdin.close()
            try:
                holder.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(holder.pid, signal.SIGKILL)
                holder.wait()

    output = (tmp_path / "driver.log").read_text()
    stdout = (tmp_path / "driver.out").read_text()
    assert "best trials of" in stdout and "(raylet" not in stdout and "ray::" not in stdout, \
        "stdout holds the command's tables; what Ray forwards from the lost node goes to stderr"
    children = trial_runs(client, name)
    assert_one_child_per_trial(children, N)
    assert all(r.info.status == "FINISHED" and r.data.tags["ray_unlearn.status"] == "ok" for r in children), \
        [(r.info.run_name, r.info.status, r.data.tags.get("ray_unlearn.message")) for r in children]
    assert all("score" in r.data.metrics and "test_acc" in r.data.metrics for r in children)
    assert worker_id not in {r.data.tags["ray_unlearn.node_id"] for r in children}, \
        "the trial that ran on the killed node finished elsewhere"
    assert "trial(s) failed" not in output
    assert "Received additional" not in output, "the retried trial's result reached Optuna (not dropped with a warning)"
    errors = list((tmp_path / "rr").glob("*/*/error.txt"))
    assert errors, "Tune recorded the lost trial's failure before restarting it"
    parent = [r for r in client.search_runs([children[0].info.experiment_id]) if r.data.tags.get("ray_unlearn.kind") == "sweep"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    assert sum(r.data.tags.get("best") == "true" for r in children) == 1
