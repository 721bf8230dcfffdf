"""What the driver does per trial event: one line on stderr, the MLflow hand-off, the trial's name."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from ray import tune

from .. import interrupt
from ..config import Experiment
from ..tasks import get_task
from ..tracking.vocabulary import TRIAL_CONFIG, info_tags, method_tags
from .trainable import INFO_KEYS, RAY_KEYS

logger = logging.getLogger(__name__)


class _ProgressCallback(tune.Callback):
    """One line per finished trial instead of Ray's per-trial tables."""

    def __init__(self, exp: Experiment, total: int, done: int = 0, best: float = -math.inf):
        self.exp, self.total = exp, total
        self.done = done
        self.best = best

    def _line(self, trial: Any, status: str, result: dict) -> None:
        self.done += 1
        score = result.get("score")
        if isinstance(score, (int, float)) and status in ("ok", "stopped"):
            self.best = max(self.best, score)
        keys = ("score", *get_task(self.exp.task).trial_columns)
        shown = "  ".join(f"{k} {result[k]:.2f}" for k in keys if isinstance(result.get(k), (int, float)))
        params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(trial.config.items()))
        best = f"  best {self.best:.2f}" if math.isfinite(self.best) else ""
        width = len(str(self.total))
        sys.stderr.write(f"[{self.done:>{width}}/{self.total}] {trial} {status:<9} {shown}  ({params}){best}\n")
        sys.stderr.flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        if interrupt.requested() and not last.get("final"):
            return  # stopped by the signal: reported as interrupted, not as a result
        self._line(trial, str(last.get("status", "stopped")), last)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "failed", {})


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


class _TrackingCallback(tune.Callback):
    """Hands Tune's trial events to the MLflow tracker; runs on the driver only."""

    def __init__(self, exp: Experiment, tracker: Any):
        self.exp = exp
        self.tracker = tracker

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        method, _ = self.exp.resolve(trial.config)
        hp = dataclasses.asdict(self.exp.method_params(trial.config))
        tags = method_tags(method=method, dataset=self.exp.data.dataset, seed=self.exp.tune.seed, hyperparameters=hp,
                           searched=self.exp.spec(method).search)
        tags[TRIAL_CONFIG] = json.dumps(trial.config, sort_keys=True)  # what a resumed sweep tells Optuna
        self.tracker.start_trial(trial.trial_id, str(trial), params=hp, tags=tags)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        metrics = {k: v for k, v in result.items() if k not in RAY_KEYS and k not in INFO_KEYS}
        self.tracker.log_epoch(trial.trial_id, int(result.get("training_iteration", 0)), metrics)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        if interrupt.requested() and not last.get("final"):
            return  # the sweep ends it as interrupted
        tags = info_tags(last)
        if trial.checkpoint is not None and last.get("final"):
            try:
                with trial.checkpoint.as_directory() as files:
                    self.tracker.log_files(trial.trial_id, files, "trial")
            except Exception as err:  # noqa: BLE001 - the run's metrics matter more than its files
                logger.warning("could not copy %s's files to MLflow: %s", trial, err)
        self.tracker.end_trial(
            trial.trial_id, metrics={}, status=str(last.get("status", "stopped")), message=str(last.get("message", "")), tags=tags
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id not in self.tracker.open:  # it failed before it started (its actor never ran): recorded all the same
            self.on_trial_start(iteration, trials, trial)
        self.tracker.end_trial(trial.trial_id, metrics={}, status="failed", message=_error_text(trial), failed=True)


# Next trial ordinal per sweep. A class attribute, not instance state: Tune pickles the namer at the
# start of a sweep, and a resumed sweep must continue numbering after the trials that already exist.
_NEXT_ORDINAL: dict[str, "itertools.count[int]"] = {}


class TrialNamer:
    """Trial names `<method>-<ordinal>` (run names in MLflow), in the order trials are created."""

    def __init__(self, exp: Experiment, sweep: str):
        self.exp, self.sweep = exp, sweep
        self.names: dict[str, str] = {}

    @staticmethod
    def continue_from(sweep: str, ordinal: int) -> None:
        _NEXT_ORDINAL[sweep] = itertools.count(ordinal)

    def __call__(self, trial: Any) -> str:
        if trial.trial_id not in self.names:
            counter = _NEXT_ORDINAL.setdefault(self.sweep, itertools.count())
            method, _ = self.exp.resolve(trial.config)
            self.names[trial.trial_id] = f"{method}-{next(counter):03d}"
        return self.names[trial.trial_id]


def _error_text(trial: Any) -> str:
    """The last line of a failed trial's error: from the driver's own copy of its error file (written at
    once), else from the sweep's storage (synced with Tune's snapshots)."""
    try:
        local = Path(trial.error_file) if getattr(trial, "error_file", None) else None
        error: Any = local.read_text() if local is not None and local.is_file() else trial.get_error()
    except Exception:  # noqa: BLE001 - best effort: the error file may be gone
        error = None
    return last_line(str(error) if error is not None else "trial raised an error")


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:2000] if lines else text[:2000]
