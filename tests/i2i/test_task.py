"""task: i2i through the config, the CLI and a real sweep."""

from __future__ import annotations

import uuid

import pytest
import yaml
from mlflow.tracking import MlflowClient

from ray_unlearn.cache import Store
from ray_unlearn.config import parse_experiment
from ray_unlearn.errors import ConfigError
from ray_unlearn.workflow import Sweep

from ..conftest import run_cli

SMALL = ["--set", "train.epochs=15"]  # small references: the behaviour, not the quality, is under test


def i2i_config(**sections) -> dict:
    raw = {
        "experiment": f"i2i-{uuid.uuid4().hex[:8]}",
        "task": "i2i",
        "data": {"dataset": "digits", "forget": {"kind": "class", "classes": [0]}, "seed": 0},
        "model": {"arch": "autoencoder"},
        "train": {"epochs": 15, "lr": 1e-3, "batch_size": 64, "optimizer": "adam", "weight_decay": 0.0, "schedule": "none"},
        "method": "i2i_kr",
        "search": {"threshold_scale": {"float": [1.0, 4.0]}, "lr": {"float": [1e-4, 1e-2], "log": True}},
        "tune": {"num_samples": 2, "max_concurrent": 2},
    }
    raw.update(sections)
    return raw


@pytest.mark.parametrize(
    "change,key,words",
    [
        ({"task": "classification"}, "method", "is a method for task: i2i"),
        ({"method": "salun"}, "method", "is a method for task: classification"),
        ({"model": {"arch": "small_cnn"}}, "model.arch", "arch: autoencoder"),
        ({"objective": {"retained": "val_acc"}}, "objective.retained", "not allowed for task i2i"),
        ({"task": "video"}, "task", "'video' is not allowed"),
    ],
)
def test_task_mismatches_are_config_errors(change, key, words):
    raw = i2i_config(**change)
    if change.get("task") == "classification":
        raw.pop("model")
    with pytest.raises(ConfigError) as info:
        parse_experiment(raw)
    assert info.value.key == key and words in str(info.value)


def test_i2i_defaults_to_selecting_on_validation_psnr():
    exp = parse_experiment(i2i_config())
    assert exp.task == "i2i" and exp.objective.retained == "val_psnr"
    assert parse_experiment(exp.to_dict()) == exp


def test_run_prints_i2i_metrics_against_the_retrain_model(tmp_path, cache_dir):
    path = tmp_path / "i2i.yaml"
    path.write_text(yaml.safe_dump(i2i_config(search={}, fixed={"threshold_scale": 2.0})))
    out = run_cli("run", str(path), "--cache-dir", str(cache_dir), "--no-track", *SMALL, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for column in ("retain_psnr", "forget_divergence", "backdoor_success", "mia_gap"):
        assert column in out.stdout
    assert "i2i_kr" in out.stdout and "retrain" in out.stdout


def test_i2i_sweep_logs_reconstruction_grids_to_each_child_run(tmp_path, cache_dir, ray_local):
    exp = parse_experiment(i2i_config())
    sweep = Sweep(exp, tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", storage=str(tmp_path / "rr"), store=Store(cache_dir))
    outcome = sweep.run()
    summary = sweep.finish(outcome)
    assert len(summary.rows) == 2 and all(r["status"] in ("ok", "collapsed") for r in summary.rows)
    client = MlflowClient(sweep.tracker.uri)
    runs = client.search_runs([sweep.tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{sweep.tracker.parent_id}'")
    assert len(runs) == 2
    for run in runs:
        assert "trial/reconstructions.png" in {a.path for a in client.list_artifacts(run.info.run_id, "trial")}
        for key in ("val_psnr", "mia", "mia_gap", "forget_divergence", "retrain_forget_divergence", "score", "audit_auc"):
            assert key in run.data.metrics, key


def test_an_i2i_trial_whose_psnr_collapses_is_stopped_early(cache_dir):
    """KR with a far-too-large ascent wrecks reconstructions; the per-epoch check stops the trial."""
    import torch

    from ray_unlearn.objective import WORST_SCORE
    from ray_unlearn.references import prepare
    from ray_unlearn.trial import run_trial

    raw = i2i_config(method="i2i_kr", search={}, tune={"report_seconds": 0},
                     fixed={"lr": 1e-2, "max_steps": 5000, "threshold_scale": 3.0, "retain_epochs": 3, "retain_lr": 1e-5})
    exp = parse_experiment(raw)
    refs, _ = prepare(exp, Store(cache_dir), torch.device("cpu"))
    reports: list[dict] = []
    result = run_trial(exp, refs, {}, seed=0, device=torch.device("cpu"), report=reports.append)
    from ray_unlearn.i2i.metrics import constant_fill_psnr

    floor = constant_fill_psnr(refs.splits.val.x)  # ~8.4 dB on digits: a model that learned nothing
    assert result.status == "collapsed" and result.metrics["score"] == WORST_SCORE, result.message
    assert len(reports) == 2 and all(r["val_psnr"] <= floor for r in reports), ([r["val_psnr"] for r in reports], floor)
    assert "filling the block with the mean pixel" in result.message and "2 evaluations in a row" in result.message
