"""The sweep: Ray Tune schedules trials, Optuna proposes hyperparameters.

The only module that imports ray.tune. References and data reach trials once
through the object store (`tune.with_parameters`), never retrained; actors
are reused so torch import and set-up are paid once per worker; a Tune
callback hands every event to `tracking.SweepTracker` on the driver.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import itertools
import os
import sys
from pathlib import Path
from typing import Any

# Ray's newer console output prints a table per trial result; we print one line per trial instead.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from ray import tune  # noqa: E402

from .config import Experiment
from .errors import ConfigError
from .objective import WORST_SCORE, targets
from .references import References

logger = logging.getLogger(__name__)

# Ray's own result keys: not metrics of ours, never logged to MLflow.
RAY_KEYS = {
    "training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "time_since_restore",
    "iterations_since_restore", "timesteps_total", "episodes_total", "timesteps_since_restore", "pid", "done",
    "node_ip", "hostname", "date", "trial_id", "experiment_tag", "config", "checkpoint_dir_name",
    "should_checkpoint", "experiment_id", "final",
}


@dataclasses.dataclass
class SweepOutcome:
    rows: list[dict[str, Any]]  # one per trial, best first
    parent_run_id: str | None
    storage_dir: str
    errors: int


def ensure_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Connect to `address` (a cluster) or start a local instance."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)


def default_concurrency(exp: Experiment) -> int:
    """As many trials as the cluster's resources hold (at least one)."""
    import ray

    res = ray.cluster_resources()
    want = exp.tune.resources
    slots = [res.get("CPU", 1.0) / want.cpu]
    if want.gpu > 0:
        slots.append(res.get("GPU", 0.0) / want.gpu)
    return max(1, int(math.floor(min(slots) + 1e-9)))


def trial_device(gpu: float) -> "Any":
    import torch

    if gpu > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _trainable(config: dict, *, exp: Experiment, refs: References, cache_root: str) -> None:
    """One Tune trial: the plain-PyTorch trial with per-epoch reports to Tune."""
    import torch

    from .cache import Store
    from .trial import run_trial

    torch.set_num_threads(max(1, int(exp.tune.resources.cpu)))  # one thread per small trial beats two
    result = run_trial(
        exp,
        refs,
        config,
        seed=exp.tune.seed,
        device=trial_device(exp.tune.resources.gpu),
        report=lambda metrics: tune.report(metrics),
        memo=Store(cache_root).memo(refs.key),
    )
    final = dict(result.metrics)
    for metric, direction in targets(exp.objective):  # a failed trial still reports every target
        final.setdefault(metric, WORST_SCORE if direction == "max" else -WORST_SCORE)
    tune.report({**final, "status": result.status, "message": result.message, "final": 1})


class _ProgressCallback(tune.Callback):
    """One line per finished trial instead of Ray's per-trial tables."""

    def __init__(self, exp: Experiment, total: int, stream: Any = None):
        self.exp, self.total = exp, total
        self.stream = stream or sys.stderr
        self.done = 0
        self.best = -math.inf

    def _line(self, trial: Any, status: str, result: dict) -> None:
        self.done += 1
        score = result.get("score")
        if isinstance(score, (int, float)) and status in ("ok", "stopped"):
            self.best = max(self.best, score)
        shown = "  ".join(f"{k} {result[k]:.2f}" for k in ("score", "val_acc", "forget_acc", "mia") if isinstance(result.get(k), (int, float)))
        params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(trial.config.items()))
        best = f"  best {self.best:.2f}" if math.isfinite(self.best) else ""
        width = len(str(self.total))
        self.stream.write(f"[{self.done:>{width}}/{self.total}] {trial} {status:<9} {shown}  ({params}){best}\n")
        self.stream.flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
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
        from .tracking import DATASET, HYPERPARAMS, METHOD, SEED

        method, _ = self.exp.resolve(trial.config)
        hp = dataclasses.asdict(self.exp.method_params(trial.config))
        self.tracker.start_trial(
            trial.trial_id,
            str(trial),
            params=hp,
            tags={
                METHOD: method,
                DATASET: self.exp.data.dataset,
                HYPERPARAMS: json.dumps(hp, sort_keys=True),
                SEED: self.exp.tune.seed,
                "ray_unlearn.searched": ",".join(sorted(self.exp.spec(method).search)),
            },
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        metrics = {k: v for k, v in result.items() if k not in RAY_KEYS}
        self.tracker.log_epoch(trial.trial_id, int(result.get("training_iteration", 0)), metrics)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        self.tracker.end_trial(
            trial.trial_id, metrics={}, status=str(last.get("status", "stopped")), message=str(last.get("message", ""))
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.end_trial(trial.trial_id, metrics={}, status="failed", message=_error_text(trial), failed=True)


def _namer(exp: Experiment, start: int = 0) -> Any:
    """Trial names `<method>-<ordinal>` (run names in MLflow), in the order trials are created."""
    counter = itertools.count(start)
    names: dict[str, str] = {}

    def name(trial: Any) -> str:
        if trial.trial_id not in names:
            method, _ = exp.resolve(trial.config)
            names[trial.trial_id] = f"{method}-{next(counter):03d}"
        return names[trial.trial_id]

    return name


def _error_text(trial: Any) -> str:
    try:
        error = trial.get_error()
    except Exception:  # noqa: BLE001 - best effort: the error file may be gone
        error = None
    text = str(error) if error is not None else "trial raised an error"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:2000] if lines else text[:2000]


def build_searcher(exp: Experiment) -> Any:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    if not exp.searched():
        raise ConfigError("search", "is empty: nothing to tune; add hyperparameters to search, or use `ray-unlearn run`")
    goals = targets(exp.objective)
    if exp.tune.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=exp.tune.seed)
    elif len(goals) > 1:
        sampler = optuna.samplers.NSGAIISampler(seed=exp.tune.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=exp.tune.seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = [m for m, _ in goals] if len(goals) > 1 else goals[0][0]
    mode = [d for _, d in goals] if len(goals) > 1 else goals[0][1]
    if exp.multi:
        space: Any = _define_by_run(exp)
    else:
        space = {name: dim.to_optuna() for name, dim in exp.search.items()}
    return OptunaSearch(space=space, metric=metric, mode=mode, sampler=sampler, points_to_evaluate=warm_start(exp) or None)


def _define_by_run(exp: Experiment) -> Any:
    """Method as a categorical choice, each method's hyperparameters conditional on it."""
    names = [m.name for m in exp.methods]

    def space(trial: Any) -> None:
        method = trial.suggest_categorical("method", names)
        for key, dim in exp.spec(method).search.items():
            name = f"{method}.{key}"
            if dim.kind == "categorical":
                trial.suggest_categorical(name, list(dim.choices))
            elif dim.kind == "int":
                trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log, step=int(dim.step or 1))
            else:
                trial.suggest_float(name, float(dim.low), float(dim.high), log=dim.log, step=dim.step)

    return space


def warm_start(exp: Experiment) -> list[dict[str, Any]]:
    """Each method's `start:` point, completed with defaults (or the range's middle), evaluated first."""
    points = []
    for spec in exp.methods:
        start = spec.start_point()
        if not start:
            continue
        defaults = dataclasses.asdict(spec.params())
        point = {}
        for name, dim in spec.search.items():
            if name in start:
                point[name] = start[name]
            elif dim.contains(defaults.get(name)):
                point[name] = defaults[name]
            elif dim.kind == "categorical":
                point[name] = dim.choices[0]
            else:
                mid = math.sqrt(dim.low * dim.high) if dim.log else (dim.low + dim.high) / 2
                point[name] = int(round(mid)) if dim.kind == "int" else mid
        points.append(exp.config_for(spec.name, point))
    return points


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
    refs: References,
    *,
    tracker: Any,
    storage_path: str,
    name: str,
    cache_root: str,
    num_samples: int | None = None,
    verbose: int = 0,
) -> SweepOutcome:
    """Run the sweep on the Ray instance `ensure_ray` connected to."""
    searcher = build_searcher(exp)
    concurrency = exp.tune.max_concurrent or default_concurrency(exp)
    trainable = tune.with_parameters(_trainable, exp=exp, refs=refs, cache_root=cache_root)
    resources = {"cpu": exp.tune.resources.cpu, "gpu": exp.tune.resources.gpu}
    trainable = tune.with_resources(trainable, resources)
    total = num_samples or exp.tune.num_samples
    namer = _namer(exp)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=build_scheduler(exp),
            num_samples=total,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
            trial_name_creator=namer,
            trial_dirname_creator=namer,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            callbacks=[_TrackingCallback(exp, tracker), _ProgressCallback(exp, total)],
            failure_config=tune.FailureConfig(max_failures=exp.tune.max_failures),
            verbose=verbose,
            progress_reporter=None,
        ),
    )
    logger.info("sweep %s: %d trials, %d at a time, %s per trial", name, total, concurrency, resources)
    grid = tuner.fit()
    rows = collect_rows(exp, grid)
    return SweepOutcome(rows=rows, parent_run_id=tracker.parent_id, storage_dir=str(Path(storage_path) / name), errors=grid.num_errors)


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
        )
        rows.append(row)
    rows.sort(key=lambda r: (r["status"] in ("ok", "stopped"), r["score"]), reverse=True)
    return rows
