"""`run_sweep`: the trials of one sweep on Ray Tune until the asked number have finished; resume from MLflow."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from ray import tune

from .. import interrupt
from ..config import Experiment
from ..objective import WORST_SCORE, targets
from .callbacks import TrialNamer, _ProgressCallback, _TrackingCallback
from .cluster import default_concurrency
from .searcher import Finished, build_searcher
from .trainable import RAY_KEYS, Shared, _trainable

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SweepOutcome:
    rows: list[dict[str, Any]]  # one per finished trial, best first
    parent_run_id: str | None
    storage_dir: str
    errors: int
    total: int = 0  # the trials the sweep is to run (finished or not)
    interrupted: int | None = None  # the stop signal's number, if one stopped it
    rechecked: list[Any] = dataclasses.field(default_factory=list)  # recheck.Candidate, robust best first
    recheck_seconds: float = 0.0


class InterruptStopper(tune.Stopper):
    """Stops every trial once a stop signal arrived (interrupt.py); Tune then ends the run gracefully."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return interrupt.requested()


def build_scheduler(exp: Experiment) -> Any:
    if exp.tune.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr="training_iteration",
            metric="score",
            mode="max",
            grace_period=exp.tune.grace_period,
            reduction_factor=exp.tune.reduction_factor,
            max_t=10_000,
        )
    return None


def run_sweep(
    exp: Experiment,
    refs: Any,
    *,
    tracker: Any,
    storage_path: str,
    name: str,
    cache_root: str,
    total: int | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    verbose: int = 0,
) -> SweepOutcome:
    """Run the sweep's trials on the Ray instance `ensure_ray` connected to, until `total` have finished.

    MLflow is the record of truth: a resumed sweep (`resume`) reads its finished trials back from their
    child runs (told to Optuna, never run again, even where Ray's snapshot missed them) and runs first
    the trials an interruption cut short (their unfinished child runs are deleted, so no step is logged
    twice). A stop signal (interrupt.py) ends the run gracefully: `interrupted` is set, and trials it cut
    short end KILLED with status `interrupted`.
    """
    total = total or exp.tune.num_samples
    path = sweep_path(storage_path, name)
    finished, rerun = resumed_trials(exp, tracker) if resume else ([], [])
    rows, errors = list(finished), 0
    remaining = total - len(finished)
    if remaining > 0 and not interrupt.requested():
        import ray

        trainable = tune.with_parameters(_trainable, exp=exp, refs=Shared(ray.put(refs)), cache_root=cache_root)
        resources = {"cpu": exp.tune.resources.cpu, "gpu": exp.tune.resources.gpu}
        trainable = tune.with_resources(trainable, resources)
        concurrency = exp.tune.max_concurrent or default_concurrency(exp)
        goals = targets(exp.objective)
        learnt = [Finished(r["config"], None if r["status"] == "failed" else tuple(float(r[m]) for m, _ in goals)) for r in finished]
        TrialNamer.continue_from(name, tracker.next_ordinal() if resume else 0)
        namer = TrialNamer(exp, name)
        best = max((r["score"] for r in finished if r["status"] in ("ok", "stopped")), default=-math.inf)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=build_searcher(exp, learnt, [r["config"] for r in rerun]),
                scheduler=build_scheduler(exp),
                num_samples=remaining,
                max_concurrent_trials=concurrency,
                reuse_actors=True,
                trial_name_creator=namer,
                trial_dirname_creator=namer,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage_path,
                stop=InterruptStopper(),
                callbacks=[_TrackingCallback(exp, tracker), _ProgressCallback(exp, total, len(finished), best), *callbacks],
                failure_config=tune.FailureConfig(max_failures=exp.tune.max_failures),
                verbose=verbose,
                progress_reporter=None,
            ),
        )
        logger.info("sweep %s: %d trials (%d to run), %d at a time, %s per trial", name, total, remaining, concurrency, resources)
        with interrupt.graceful():
            grid = tuner.fit()
        new = collect_rows(exp, grid)
        if interrupt.requested():  # what the signal cut short is not a result
            new = [r for r in new if r.get("final") or r["status"] == "failed"]
        rows += new
        errors = sum(r["status"] == "failed" for r in new)
    tracker.end_open_trials(interrupted=interrupt.requested())
    if tracker.uri.startswith(("http://", "https://")):  # only an HTTP client re-sends a request whose answer was lost
        tracker.drop_duplicates()
    rows.sort(key=lambda r: (r["status"] in ("ok", "stopped"), r["score"]), reverse=True)
    return SweepOutcome(rows=rows, parent_run_id=tracker.parent_id, storage_dir=path, errors=errors, total=total,
                        interrupted=interrupt.signum())


def resumed_trials(exp: Experiment, tracker: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows of the sweep's finished trials, rows of the trials to run again), read from MLflow; the
    unfinished child runs of the latter are deleted."""
    finished, rerun = [], []
    for run in tracker.trial_records():
        config = run["config"] if run["config"] is not None else exp.config_for(run["method"], run["sampled"])
        method, sampled = exp.resolve(config)
        row = {**run["metrics"], **run["info"], "trial_id": run["trial_id"], "run_name": run["run_name"], "method": method,
               "status": run["status"], "hyperparameters": sampled, "config": config, "final": 1}
        row["score"] = float(run["metrics"].get("score", WORST_SCORE)) if run["status"] != "failed" else WORST_SCORE
        (finished if run["finished"] else rerun).append(row)
    tracker.drop_trials([r["trial_id"] for r in rerun], why="an interruption cut its trial short; the trial runs again")
    return finished, rerun


def sweep_path(storage_path: str, name: str) -> str:
    return f"{storage_path.rstrip('/')}/{name}" if "://" in storage_path else str(Path(storage_path) / name)


def collect_rows(exp: Experiment, grid: Any) -> list[dict[str, Any]]:
    rows = []
    for result in grid:
        metrics = dict(result.metrics or {})
        trial_id = metrics.get("trial_id", "?")
        name = Path(str(result.path)).name if result.path else trial_id
        status = metrics.get("status", "failed" if result.error else "stopped")
        if result.error is not None:
            status = "failed"
        row = {k: v for k, v in metrics.items() if k not in RAY_KEYS}
        method, sampled = exp.resolve(result.config or {})
        row.update(
            trial_id=trial_id,
            run_name=name,
            method=method,
            status=status,
            score=float(metrics.get("score", WORST_SCORE)) if status != "failed" else WORST_SCORE,
            hyperparameters=sampled,
            config=dict(result.config or {}),
            final=metrics.get("final", 0),
        )
        rows.append(row)
    rows.sort(key=lambda r: (r["status"] in ("ok", "stopped"), r["score"]), reverse=True)
    return rows
