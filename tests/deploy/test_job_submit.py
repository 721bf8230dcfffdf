"""`ray job submit` of `ray-unlearn tune` to a real Ray head node (dashboard on 127.0.0.1),
the way deploy/README.md submits sweeps to a cluster; results checked in MLflow."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from ray_unlearn.tracking import PARENT, STATUS

from .e2e import small_experiment, sweep_runs
from .ray_head import RAY, start_head, stop_head


@pytest.fixture()
def head(tmp_path):
    head = start_head(tmp_path, num_cpus=2)
    try:
        yield head
    finally:
        stop_head(head)


@pytest.mark.slow
def test_ray_job_submit_runs_a_sweep_logged_to_the_tracking_server(head, tmp_path, mlflow_server, cache_dir):
    workdir = tmp_path / "job"  # uploaded by `--working-dir`: the experiment file only
    workdir.mkdir()
    raw = small_experiment("job-submit", max_concurrent=2)
    (workdir / "exp.yaml").write_text(yaml.safe_dump(raw))
    storage = tmp_path / "ray_results"
    cmd = [RAY, "job", "submit", "--address", head.dashboard_url, "--working-dir", str(workdir), "--",
           "ray-unlearn", "tune", "exp.yaml", "--num-samples", "2", "--tracking-uri", mlflow_server.url,
           "--cache-dir", str(cache_dir), "--storage", str(storage), "--address", "auto"]
    out = subprocess.run(cmd, env=head.env, cwd=tmp_path, capture_output=True, text=True, timeout=420)
    log = out.stdout[-4000:] + out.stderr[-3000:]
    assert out.returncode == 0, log + "\n--- head ---\n" + head.log_tail()
    assert "succeeded" in log and "best trials of" in out.stdout, log

    parents, children = sweep_runs(mlflow_server.url, raw["experiment"])
    assert len(parents) == 1 and len(children) == 2
    assert all(c.data.tags[PARENT] == parents[0].info.run_id for c in children)
    assert all("score" in c.data.metrics and c.data.tags[STATUS] == "ok" and c.info.status == "FINISHED" for c in children)
    sweeps = [p for p in storage.iterdir() if p.is_dir() and not p.name.startswith(".")]  # .locks: the driver lock
    assert len(sweeps) == 1 and len([t for t in sweeps[0].iterdir() if t.is_dir()]) == 2, "Tune's files under --storage"
