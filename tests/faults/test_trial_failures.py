"""Trials that raise, diverge or collapse: in process, on the session's real local Ray
instance, logged to the session's real MLflow server.

How a trial is made to raise, without mocks or test hooks: AMUN stores its
adversarial set in the reference cache (`Store.memo`, shared by every trial).
After the driver has loaded the references, the cache directory is replaced by
a regular file - the shared cache vanishing under a running sweep (an
unmounted volume). AMUN trials then fail when they write their memo entry
(CacheError), gradient-ascent trials never touch the cache and are unaffected.
A test callback (the public `tune.Callback` API) counts Tune's retries, and in
the transient variant puts the directory back when Tune retries the trial.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter

from mlflow.tracking import MlflowClient
from ray import tune

from ray_unlearn.cache import Store
from ray_unlearn.config import parse_experiment
from ray_unlearn.objective import WORST_SCORE
from ray_unlearn.workflow import Sweep

from ..conftest import digits_config, run_cli
from .helpers import assert_one_child_per_trial, trial_runs

MIXED = dict(
    method=["amun", "gradient_ascent"],
    fixed={"amun": {"steps": 5, "epochs": 2, "max_doublings": 2}},
    search={
        "amun": {"lr": {"float": [1e-3, 1e-2], "log": True}},
        "gradient_ascent": {"lr": {"float": [1e-4, 1e-3], "log": True}},
        "points_to_evaluate": [{"method": "amun"}, {"method": "gradient_ascent"}, {"method": "gradient_ascent"}],
    },
)


class Attempts(tune.Callback):
    """What Tune did with each trial: retries (on_trial_recover) and final errors; optionally repairs the cache."""

    def __init__(self, repair: str | None = None):
        self.recovered: Counter = Counter()
        self.errored: Counter = Counter()
        self.repair = repair

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.recovered[trial.trial_id] += 1
        if self.repair:  # the volume comes back before the retry
            from pathlib import Path

            path = Path(self.repair)
            if path.is_file():
                path.unlink()
                path.mkdir()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.errored[trial.trial_id] += 1


def mixed_sweep(tmp_path, mlflow_server, cache_dir, digits_refs, max_failures: int):
    name = f"raise-{uuid.uuid4().hex[:8]}"
    exp = parse_experiment(digits_config(experiment=name, tune={"num_samples": 3, "max_concurrent": 2,
                                                                "max_failures": max_failures}, **MIXED))
    private = tmp_path / "cache"  # a copy of the session's references: the original stays intact
    shutil.copytree(cache_dir / digits_refs.key, private / digits_refs.key)
    sweep = Sweep(exp, tracking_uri=mlflow_server.url, storage=str(tmp_path / "ray_results"), store=Store(private))
    refs = sweep.prepare()
    assert refs.key == digits_refs.key
    shutil.rmtree(private)
    private.write_text("the cache volume went away")
    return sweep, private


def by_trial(children):
    return {r.data.tags["ray_unlearn.trial_id"]: r for r in children}


def test_trial_that_keeps_raising_is_retried_then_failed_and_the_others_finish(tmp_path, mlflow_server, cache_dir, digits_refs, ray_local):
    sweep, _ = mixed_sweep(tmp_path, mlflow_server, cache_dir, digits_refs, max_failures=1)
    attempts = Attempts()
    outcome = sweep.run(callbacks=[attempts])
    summary = sweep.finish(outcome)

    rows = {r["trial_id"]: r for r in outcome.rows}
    amun = {t for t, r in rows.items() if r["method"] == "amun"}
    ga = set(rows) - amun
    assert amun and ga and len(rows) == 3, "every trial is accounted for"
    assert outcome.errors == len(amun)
    assert all(rows[t]["status"] == "failed" and rows[t]["score"] == WORST_SCORE for t in amun)
    assert all(rows[t]["status"] == "ok" for t in ga), "the other trials are unaffected"
    assert all(attempts.recovered[t] == 1 for t in amun), "retried exactly tune.max_failures times"
    assert all(attempts.errored[t] == 1 for t in amun) and not any(attempts.recovered[t] for t in ga)
    assert summary.rows[0]["trial_id"] in ga

    client = MlflowClient(mlflow_server.url)
    children = trial_runs(client, sweep.exp.experiment)
    assert_one_child_per_trial(children, 3)  # the retry logged into the same child run
    runs = by_trial(children)
    for t in amun:
        run = runs[t]
        assert run.info.status == "FAILED" and run.data.tags["ray_unlearn.status"] == "failed"
        message = run.data.tags["ray_unlearn.message"]
        assert "CacheError" in message and "is not writable" in message and "Traceback" not in message, message
    for t in ga:
        assert runs[t].info.status == "FINISHED" and runs[t].data.tags["ray_unlearn.status"] == "ok"
        assert runs[t].data.metrics["score"] > WORST_SCORE
    best = [r for r in children if r.data.tags.get("best") == "true"]
    assert len(best) == 1 and best[0].data.tags["ray_unlearn.trial_id"] in ga
    parent = client.get_run(sweep.tracker.parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials"] == 3


def test_trial_that_raises_once_succeeds_on_its_retry_in_the_same_child_run(tmp_path, mlflow_server, cache_dir, digits_refs, ray_local):
    sweep, private = mixed_sweep(tmp_path, mlflow_server, cache_dir, digits_refs, max_failures=1)
    attempts = Attempts(repair=str(private))
    outcome = sweep.run(callbacks=[attempts])
    sweep.finish(outcome)
    amun = {r["trial_id"] for r in outcome.rows if r["method"] == "amun"}
    assert outcome.errors == 0 and all(r["status"] == "ok" for r in outcome.rows)
    assert sum(attempts.recovered[t] for t in amun) >= 1, "the first AMUN attempt failed and was retried"
    children = trial_runs(MlflowClient(mlflow_server.url), sweep.exp.experiment)
    assert_one_child_per_trial(children, 3)
    assert all(r.info.status == "FINISHED" and "score" in r.data.metrics for r in children)
    assert any(private.glob("*-amun_adversarial-*")), "the retry wrote its memo entry into the repaired cache"


def test_diverged_and_collapsed_trials_get_the_worst_score_and_are_never_best(tmp_path, mlflow_server, cache_dir, digits_refs, ray_local):
    """gradient ascent with lr 1e6 goes non-finite in its first epoch; lr 0.5 drives accuracy to chance (stopped early)."""
    name = f"nan-{uuid.uuid4().hex[:8]}"
    exp = parse_experiment(digits_config(
        experiment=name, method="gradient_ascent", fixed={"epochs": 10},
        search={"lr": {"choice": [0.003, 0.5, 1.0e6]}, "points_to_evaluate": [{"lr": 0.003}, {"lr": 0.5}, {"lr": 1.0e6}]},
        tune={"num_samples": 3, "max_concurrent": 2, "report_seconds": 0},
    ))
    sweep = Sweep(exp, tracking_uri=mlflow_server.url, storage=str(tmp_path / "ray_results"), store=Store(cache_dir))
    outcome = sweep.run()
    summary = sweep.finish(outcome)
    status = {r["hyperparameters"]["lr"]: r["status"] for r in outcome.rows}
    assert status == {0.003: "ok", 0.5: "collapsed", 1.0e6: "diverged"}, status
    assert outcome.errors == 0, "a diverged trial ends with a status, not an error"
    assert summary.rows[0]["hyperparameters"]["lr"] == 0.003
    assert all(r["score"] == WORST_SCORE for r in outcome.rows if r["status"] != "ok")

    client = MlflowClient(mlflow_server.url)
    children = trial_runs(client, name)
    assert_one_child_per_trial(children, 3)
    by_lr = {float(r.data.params["lr"]): r for r in children}
    assert all(r.info.status == "FINISHED" for r in children)
    for lr, want in ((0.5, "collapsed"), (1.0e6, "diverged")):
        run = by_lr[lr]
        assert run.data.tags["ray_unlearn.status"] == want and run.data.metrics["score"] == WORST_SCORE
        assert run.data.tags["ray_unlearn.message"]
    assert "diverged" in by_lr[1.0e6].data.tags["ray_unlearn.message"]
    epochs = {lr: len(client.get_metric_history(r.info.run_id, "epoch")) for lr, r in by_lr.items()}
    # 10 epochs: on some CPUs lr 0.5 reaches chance only in epoch 4-5, two evaluations in a row must show it
    assert epochs[1.0e6] < 10 == epochs[0.003], f"the diverged trial stopped early: {epochs}"
    assert epochs[0.5] < 10, f"the collapsed trial (val_acc at chance) stopped early: {epochs}"
    assert "in a row" in by_lr[0.5].data.tags["ray_unlearn.message"]
    assert by_lr[0.003].data.tags.get("best") == "true"
    assert all(r.data.tags.get("best") != "true" for r in (by_lr[0.5], by_lr[1.0e6]))

    out = run_cli("best", name, "--tracking-uri", mlflow_server.url, "--top", "5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"best: {by_lr[0.003].info.run_name} " in out.stdout
    table = [line for line in out.stdout.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert table[0].split()[1] == by_lr[0.003].info.run_name and len(table) == 3, out.stdout
