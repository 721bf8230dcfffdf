"""MLflow: the only package that imports it.

The driver is the only writer (a local SQLite store never sees concurrent writers; workers need no
route to the tracking server). Per sweep: a parent run with the config, search space, reference
metrics and a ranked table; per trial: a child run with hyperparameters as params, per-epoch metrics
with step, final metrics and tags; the best child is tagged `best=true` and its score copied to the
parent.

- `vocabulary`: every tag and key name, and the tags of a method's run
- `store`: the store's URI, the reachability check, `Tracker` (one experiment's runs, batched)
- `writer`: `BackgroundWriter`, the retried, ordered write queue
- `sweep`: `SweepTracker`, a sweep's parent and child runs (its docstring gives the threading rule)
- `records`: reading child runs back (by trial, re-check results)
- `runs`: `ray-unlearn run`'s standalone run and the readers of `best`, `audit` and `--export`
"""

from .runs import audit_links, latest_sweep, log_audit, log_single_run, ranked_runs, read_run_config, table_csv
from .store import DEFAULT_URI, LOCAL_UI, Tracker, check_reachable, git_commit, resolve_uri, ui_base
from .sweep import SweepTracker
from .vocabulary import (
    AUDIT_VIEW,
    BEST,
    CREATED_BY,
    DATASET,
    DRIVER_LEASE,
    FINISHED_TRIALS,
    HYPERPARAMS,
    INFO,
    INTERRUPTED,
    KIND,
    MESSAGE,
    METHOD,
    NOTE,
    NUM_SAMPLES,
    PARENT,
    RECHECK_MESSAGE,
    RECHECK_STATUS,
    REFERENCES,
    ROBUST_SCORE,
    ROBUST_STD,
    SEARCHED,
    SEED,
    SHARED_VIEW,
    STATUS,
    SWEEP,
    TRIAL_CONFIG,
    TRIAL_ID,
    info_tags,
    method_tags,
    recheck_metric,
    view_key,
)
from .writer import BackgroundWriter, retryable

__all__ = [
    "AUDIT_VIEW", "BEST", "CREATED_BY", "DATASET", "DEFAULT_URI", "DRIVER_LEASE", "FINISHED_TRIALS", "HYPERPARAMS", "INFO",
    "INTERRUPTED", "KIND", "LOCAL_UI", "MESSAGE", "METHOD", "NOTE", "NUM_SAMPLES", "PARENT", "RECHECK_MESSAGE", "RECHECK_STATUS",
    "REFERENCES", "ROBUST_SCORE", "ROBUST_STD", "SEARCHED", "SEED", "SHARED_VIEW", "STATUS", "SWEEP", "TRIAL_CONFIG", "TRIAL_ID",
    "BackgroundWriter", "SweepTracker", "Tracker", "audit_links", "check_reachable", "git_commit", "info_tags", "latest_sweep",
    "log_audit", "log_single_run", "method_tags", "ranked_runs", "read_run_config", "recheck_metric", "resolve_uri", "retryable",
    "table_csv", "ui_base", "view_key",
]
