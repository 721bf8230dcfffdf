"""Tuning at scale, in process on a real local Ray instance: objectives, schedulers,
resources, repeats, warm start, several methods, trial files, ranking from MLflow."""

from __future__ import annotations

import json
import uuid

import pytest
from mlflow.tracking import MlflowClient
from ray import tune

from ray_unlearn.cache import Store
from ray_unlearn.config import parse_experiment
from ray_unlearn.objective import dominates
from ray_unlearn.tracking import BEST, KIND, ranked_runs
from ray_unlearn.workflow import Sweep

from .conftest import digits_config

GA_SEARCH = {"lr": {"float": [1e-4, 3e-3], "log": True}, "epochs": {"int": [2, 12]}}


def sweep(tmp_path, cache_dir, uri=None, **sections):
    name = f"t-{uuid.uuid4().hex[:8]}"
    raw = digits_config(experiment=name, method="gradient_ascent", **{"search": GA_SEARCH, **sections})
    exp = parse_experiment(raw)
    uri = uri or f"sqlite:///{tmp_path / 'mlflow.db'}"
    s = Sweep(exp, tracking_uri=uri, storage=str(tmp_path / "ray_results"), store=Store(cache_dir))
    return s


class MaxRunning(tune.Callback):
    """How many trials Tune held RUNNING at once (resources granted), and the most seen."""

    def __init__(self):
        self.most = 0

    def on_step_end(self, iteration, trials, **info):
        self.most = max(self.most, sum(t.status == "RUNNING" for t in trials))


def children(s):
    client = MlflowClient(s.tracker.uri)
    runs = client.search_runs([s.tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{s.tracker.parent_id}'")
    return client, runs


def test_fractional_gpus_pack_eight_trials_and_fall_back_to_cpu(tmp_path, cache_dir, ray_local):
    s = sweep(tmp_path, cache_dir, tune={"num_samples": 8, "resources": {"cpu": 0.25, "gpu": 0.25}})
    counter = MaxRunning()
    outcome = s.run(callbacks=[counter])
    s.finish(outcome)
    assert len(outcome.rows) == 8 and all(r["status"] == "ok" for r in outcome.rows)
    assert counter.most == 8, "2 declared GPUs / 0.25 per trial = 8 trials at a time"
    assert {r["cuda_visible_devices"] for r in outcome.rows} <= {"0", "1"}
    assert all(r["cuda_visible_devices"] for r in outcome.rows), "each trial sees its assigned device"
    assert {r["device"] for r in outcome.rows} == {"cpu"}, "no CUDA here: trials run on the CPU"


def test_pareto_sweep_logs_a_mutually_non_dominated_front(tmp_path, cache_dir, ray_local):
    s = sweep(tmp_path, cache_dir, objective={"kind": "pareto", "pareto": ["val_acc", "mia_gap"]},
              tune={"num_samples": 6, "max_concurrent": 2})
    outcome = s.run()
    summary = s.finish(outcome)
    goals = [("val_acc", "max"), ("mia_gap", "min")]
    assert summary.goals == goals and summary.front
    for a in summary.front:
        assert not any(dominates(b, a, goals) for b in summary.front if b is not a)
    ok = [r for r in summary.rows if r["status"] == "ok"]
    for r in ok:  # everything off the front is dominated by something on it
        if r not in summary.front:
            assert any(dominates(f, r, goals) for f in summary.front)
    client, _ = children(s)
    names = {a.path for a in client.list_artifacts(s.tracker.parent_id)}
    assert "pareto_front.csv" in names
    assert "plots/pareto_front.png" in {a.path for a in client.list_artifacts(s.tracker.parent_id, "plots")}


def test_asha_stops_poor_trials_early(tmp_path, cache_dir, ray_local):
    search = {"lr": {"float": [1e-5, 1e-1], "log": True}}
    s = sweep(tmp_path, cache_dir, search=search, fixed={"epochs": 12},
              tune={"num_samples": 8, "max_concurrent": 2, "scheduler": "asha", "grace_period": 1, "reduction_factor": 2})
    outcome = s.run()
    stopped = [r for r in outcome.rows if r["status"] == "stopped"]
    finished = [r for r in outcome.rows if r["status"] != "stopped"]
    assert stopped, "ASHA stopped no trial"
    assert all(r["epoch"] < 12 for r in stopped) and finished


def test_repeats_report_mean_and_spread(tmp_path, cache_dir, ray_local):
    s = sweep(tmp_path, cache_dir, tune={"num_samples": 2, "repeats": 2, "max_concurrent": 2})
    outcome = s.run()
    for r in outcome.rows:
        assert r["repeats"] == 2 and "score_std" in r and r["score_std"] >= 0


def test_start_point_runs_first_then_several_methods_are_chosen_between(tmp_path, cache_dir, ray_local):
    raw = digits_config(
        experiment=f"t-{uuid.uuid4().hex[:8]}",
        method=["gradient_ascent", "neggrad_plus"],
        search={"gradient_ascent": {"lr": {"float": [1e-4, 1e-3], "log": True, "start": 2e-4}, "epochs": {"int": [10, 30], "start": 25}},
                "neggrad_plus": {"beta": {"float": [0.8, 0.99], "start": 0.9}}},
        fixed={"neggrad_plus": {"epochs": 3}},
        tune={"num_samples": 4, "max_concurrent": 2},
    )
    exp = parse_experiment(raw)
    s = Sweep(exp, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", storage=str(tmp_path / "rr"), store=Store(cache_dir))
    outcome = s.run()
    summary = s.finish(outcome)
    by_name = {r["run_name"]: r for r in outcome.rows}
    first, second = by_name["gradient_ascent-000"], by_name["neggrad_plus-001"]
    finished = [r for r in summary.rows if r["status"] == "ok"]
    by_method = {m: max((r for r in finished if r["method"] == m), key=lambda r: r["score"]) for m in {r["method"] for r in finished}}
    assert {r["method"]: r["run_name"] for r in summary.per_method} == {m: r["run_name"] for m, r in by_method.items()}, \
        "each method's best trial is reported"
    assert first["hyperparameters"] == {"lr": 2e-4, "epochs": 25}, "the start point is evaluated first"
    assert second["hyperparameters"] == {"beta": 0.9}
    client, runs = children(s)
    assert {r.data.tags["ray_unlearn.method"] for r in runs} == {"gradient_ascent", "neggrad_plus"}
    ng = next(r for r in runs if r.info.run_name == "neggrad_plus-001")
    assert ng.data.params["epochs"] == "3" and ng.data.params["beta"] == "0.9"
    assert "lr" in ng.data.params and "beta" not in next(r for r in runs if r.info.run_name == "gradient_ascent-000").data.params


def test_trial_files_reach_the_child_run_and_best_is_first_by_score(tmp_path, cache_dir, ray_local):
    s = sweep(tmp_path, cache_dir, tune={"num_samples": 3, "max_concurrent": 2})
    outcome = s.run()
    summary = s.finish(outcome)
    client, runs = children(s)
    for run in runs:
        files = {a.path for a in client.list_artifacts(run.info.run_id, "trial")}
        assert {"trial/metrics.json", "trial/history.csv"} <= files
    local = client.download_artifacts(runs[0].info.run_id, "trial/metrics.json", str(tmp_path))
    saved = json.loads(open(local).read())
    assert saved["metrics"]["score"] == pytest.approx(runs[0].data.metrics["score"])
    ranked = ranked_runs(s.tracker.uri, s.exp.experiment, top=3)
    assert ranked[0]["best"] and ranked[0]["run_name"] == summary.rows[0]["run_name"]
    parent = client.get_run(s.tracker.parent_id)
    assert parent.data.tags[KIND] == "sweep" and "mlflow.note.content" in parent.data.tags
    plots = {a.path for a in client.list_artifacts(s.tracker.parent_id, "plots")}
    assert {"plots/optimisation_history.png", "plots/param_importances.png"} <= plots
    assert sum(r.data.tags.get(BEST) == "true" for r in runs) == 1
    key = summary.link.split("viewStateShareKey=")[1]
    view = json.loads(client.get_experiment(runs[0].info.experiment_id).tags[f"mlflow.sharedViewState.{key}"])
    assert view["searchFilter"] == f"tags.mlflow.parentRunId = '{s.tracker.parent_id}'"
    assert view["orderByKey"] == "metrics.`score`" and view["orderByAsc"] is False
    assert view["selectedColumns"][0] == "metrics.`score`" and "params.`lr`" in view["selectedColumns"]


def test_storage_accepts_a_uri(tmp_path, cache_dir, ray_local):
    name = f"t-{uuid.uuid4().hex[:8]}"
    exp = parse_experiment(digits_config(experiment=name, method="gradient_ascent", search=GA_SEARCH, tune={"num_samples": 1}))
    s = Sweep(exp, tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", storage=f"file://{tmp_path / 'remote'}", store=Store(cache_dir))
    outcome = s.run()
    assert outcome.rows[0]["status"] == "ok"
    assert (tmp_path / "remote" / s.name / "tuner.pkl").exists()


def test_a_gpu_trial_on_a_worker_without_cuda_is_an_error_not_a_silent_cpu_run(monkeypatch):
    import torch

    from ray_unlearn.errors import DeviceError
    from ray_unlearn.search import CPU_FALLBACK, trial_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert trial_device(0).type == "cpu"
    monkeypatch.delenv(CPU_FALLBACK, raising=False)
    with pytest.raises(DeviceError, match=r"tune.resources.gpu is 0.25, but this worker sees no CUDA device"):
        trial_device(0.25)
    monkeypatch.setenv(CPU_FALLBACK, "1")
    assert trial_device(0.25).type == "cpu"
