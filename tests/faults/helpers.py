"""Small helpers shared by the fault tests (no mocks: they only read what real components wrote)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def trial_runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string="tags.`ray_unlearn.kind` = 'trial'", max_results=1000)


def sweep_runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string="tags.`ray_unlearn.kind` = 'sweep'", max_results=1000)


def assert_user_error(out: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2, one or two lines on stderr (besides training progress bars), no traceback;
    returns the `error:` line."""
    lines = [line for line in out.stderr.splitlines() if line.strip() and "[####" not in line]
    assert out.returncode == 2, f"exit {out.returncode}: {out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert 1 <= len(lines) <= 2, out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr
    return next((line for line in lines if line.startswith("error: ")), lines[0])


def assert_one_child_per_trial(children: list, n: int) -> None:
    ids = [r.data.tags.get("ray_unlearn.trial_id") for r in children]
    assert len(children) == n, [(r.info.run_name, r.info.status) for r in children]
    assert len(set(ids)) == n and None not in ids, f"duplicate child runs: {ids}"
    assert len({r.info.run_name for r in children}) == n
