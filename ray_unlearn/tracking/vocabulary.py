"""What MLflow holds, by name: every tag and key this tool writes or reads, declared once.

A sweep is a parent run (`KIND` sweep) with one child run per trial (`KIND` trial, `PARENT` its
sweep); `ray-unlearn run` writes a standalone run (`KIND` run). Every run of a method carries
`method_tags`; a trial adds what the search needs to resume (`TRIAL_ID`, `TRIAL_CONFIG`) and,
when it ends, `STATUS`, `MESSAGE` and its `INFO` tags.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

KIND = "ray_unlearn.kind"  # sweep | trial | run
TRIAL_ID = "ray_unlearn.trial_id"
STATUS = "ray_unlearn.status"
MESSAGE = "ray_unlearn.message"  # why a trial failed, collapsed or was stopped
METHOD = "ray_unlearn.method"
DATASET = "ray_unlearn.dataset"
HYPERPARAMS = "ray_unlearn.hyperparameters"  # JSON, exact types, for `best --export`
SEARCHED = "ray_unlearn.searched"  # the hyperparameters the searcher chose (comma-separated)
SEED = "ray_unlearn.seed"
REFERENCES = "ray_unlearn.references"  # the reference models' cache key, on the parent run
SWEEP = "ray_unlearn.sweep"  # the Ray Tune experiment name, to find the parent again on --resume
NUM_SAMPLES = "ray_unlearn.num_samples"  # the trials the sweep is to run (a resumed sweep may extend it)
TRIAL_CONFIG = "ray_unlearn.trial_config"  # JSON: the trial's config as the searcher proposed it
CREATED_BY = "ray_unlearn.created_by"  # a nonce per parent-run creation: its re-sent copies carry it too
DRIVER_LEASE = "ray_unlearn.driver"  # driver_lock's lease where the sweep's storage is a URI
INTERRUPTED = "interrupted"  # the status of a trial, and of a sweep, that a stop signal cut short
FINISHED_TRIALS = "trials_finished"
BEST = "best"
# where and when a trial ran: result keys of the trainable, recorded as `ray_unlearn.<key>` tags
INFO = ("device", "cuda_visible_devices", "node_id", "trial_started", "trial_finished")
INFO_TAGS = {f"ray_unlearn.{k}" for k in INFO}
# the re-check rung: per seed, a status tag and `recheck_<metric>_s<seed>` metrics on the candidate's child run
RECHECK_STATUS = "ray_unlearn.recheck_status_s"
RECHECK_MESSAGE = "ray_unlearn.recheck_message_s"
ROBUST_SCORE = "recheck_score_mean"  # the mean score over the sweep's seed and the re-check seeds
ROBUST_STD = "recheck_score_std"
RECHECK_TABLE = "recheck/seeds.csv"
PARENT = "mlflow.parentRunId"
NOTE = "mlflow.note.content"
GIT_COMMIT = "mlflow.source.git.commit"
# MLflow's UI opens a runs table with the columns, sort and filter saved in this experiment tag when the
# link names its key (`?viewStateShareKey=<key>`): the link `tune` prints shows why a run ranks where it does.
SHARED_VIEW = "mlflow.sharedViewState."
AUDIT_VIEW = ("audit_quality_ratio", "audit_auc", "audit_score")  # what the sweep's runs-table view adds after an audit


def method_tags(*, method: str, dataset: str, seed: int, hyperparameters: Mapping[str, Any],
                searched: Iterable[str] = ()) -> dict[str, str]:
    """The tags of every run of a method: a sweep's trial and a `ray-unlearn run` alike."""
    return {METHOD: method, DATASET: dataset, SEED: str(seed), HYPERPARAMS: json.dumps(dict(hyperparameters), sort_keys=True),
            SEARCHED: ",".join(sorted(searched))}


def info_tags(result: Mapping[str, Any]) -> dict[str, Any]:
    """The INFO tags of a trial's last result."""
    return {f"ray_unlearn.{k}": result[k] for k in INFO if k in result}


def view_key(parent_id: str) -> str:
    return f"ray-unlearn-{parent_id}"


def recheck_metric(metric: str, seed: int) -> str:
    return f"recheck_{metric}_s{seed}"
