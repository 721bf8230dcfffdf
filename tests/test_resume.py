"""Interrupt a sweep by killing its driver (SIGKILL), resume it: every trial finishes,
one MLflow child run per trial, none duplicated, none left RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import yaml
from mlflow.tracking import MlflowClient

from .conftest import digits_config, run_cli

N = 6


def test_killed_sweep_resumes_without_duplicate_or_orphan_runs(tmp_path, mlflow_server, cache_dir, digits_refs):
    """digits_refs: the references are cached before the driver starts, so trials start at once."""
    name = f"resume-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(digits_config(
        experiment=name, method="gradient_ascent",
        search={"lr": {"float": [1e-4, 3e-3], "log": True}, "epochs": {"int": [5, 25]}},
        tune={"num_samples": N, "max_concurrent": 1},
    )))
    common = ["--tracking-uri", mlflow_server.url, "--cache-dir", str(cache_dir), "--storage", str(tmp_path / "rr"), "--name", "sw"]
    log = open(tmp_path / "first.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "ray_unlearn.cli", "tune", str(path), *common],
                              cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = MlflowClient(mlflow_server.url)
    deadline = time.monotonic() + 240
    finished = 0
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                runs = client.search_runs([exp.experiment_id], filter_string="tags.`ray_unlearn.kind` = 'trial'")
                finished = sum(r.info.status == "FINISHED" for r in runs)
                if finished >= 2:
                    break
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started
        driver.wait()
    assert finished >= 2, (tmp_path / "first.log").read_text()[-2000:]
    exp = client.get_experiment_by_name(name)
    before = client.search_runs([exp.experiment_id], filter_string="tags.`ray_unlearn.kind` = 'trial'")
    assert len(before) < N or any(r.info.status == "RUNNING" for r in before), "the kill came too late to test resuming"

    out = run_cli("tune", str(path), *common, "--resume", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming sweep sw" in out.stderr
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("ray_unlearn.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("ray_unlearn.kind") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", "the parent run is reused, not duplicated"
    assert len(children) == N, [(r.info.run_name, r.info.status) for r in children]
    assert all(r.info.status == "FINISHED" for r in children), "no child left RUNNING"
    assert len({r.data.tags["ray_unlearn.trial_id"] for r in children}) == N
    assert len({r.info.run_name for r in children}) == N
    assert all("score" in r.data.metrics for r in children)
    assert sum(r.data.tags.get("best") == "true" for r in children) == 1
