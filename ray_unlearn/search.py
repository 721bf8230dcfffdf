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
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

# Ray's newer console output prints a table per trial result; we print one line per trial instead.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Tune snapshots the experiment every >= 10 s by default ("auto"); what finished after the last
# snapshot is re-run by --resume. Snapshot often: the state of a sweep this size is small.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
# Tune's own per-result files (result.json, progress.csv, a TensorBoard event file) duplicate what
# MLflow records and cost the driver ~1 s of CPU per 32 digits trials (bench/sweep.py trials; driver
# CPU 9.8 s -> 8.6 s in one run), CPU the trials need on a small machine. Set it to 0 to get them back.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
if os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1":  # the result grid then warns once per trial about them
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)

import optuna  # noqa: E402
from ray import tune  # noqa: E402

from .config import Experiment
from .errors import ConfigError
from .objective import WORST_SCORE, targets
from .tasks import get_task

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
    rechecked: list[Any] = dataclasses.field(default_factory=list)  # recheck.Candidate, robust best first
    recheck_seconds: float = 0.0


def ensure_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Connect to `address` (a cluster) or start a local instance."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=True)
    elif os.environ.get("RAY_ADDRESS"):  # a `ray job submit` driver: its job's cluster
        ray.init(log_to_driver=True)
    else:  # a new instance of our own, never a cluster someone started on this machine with `ray start`
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)


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


# Per-trial facts reported beside the metrics: logged to MLflow as tags, not metrics.
INFO_KEYS = ("status", "message", "device", "cuda_visible_devices", "node_id", "trial_started", "trial_finished")


def _trainable(config: dict, *, exp: Experiment, refs: Any, cache_root: str) -> None:
    """One Tune trial: the plain-PyTorch trial with per-epoch reports to Tune.

    The trial's own files (final metrics, per-epoch history, optionally the
    unlearned weights) travel to the driver in its final Tune checkpoint.
    """
    import tempfile

    import ray
    import torch

    from .cache import Store
    from .trial import run_repeats, write_trial_files

    started = time.time()
    for noisy in ("ray.train", "ray.tune"):  # "Checkpoint successfully created" once per trial
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(max(1, int(exp.tune.resources.cpu)))  # one thread per small trial beats two
    device = trial_device(exp.tune.resources.gpu)
    history: list[dict] = []

    def report(metrics: dict) -> None:
        history.append(metrics)
        tune.report(metrics)

    result = run_repeats(exp, refs, config, device=device, report=report, memo=Store(cache_root).memo(refs.key))
    final = dict(result.metrics)
    for metric, direction in targets(exp.objective):  # a failed trial still reports every target
        final.setdefault(metric, WORST_SCORE if direction == "max" else -WORST_SCORE)
    info = {
        "status": result.status,
        "message": result.message,
        "device": str(device),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "node_id": ray.get_runtime_context().get_node_id(),
        "trial_started": started,
        "trial_finished": time.time(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        write_trial_files(tmp, result, history, info, save_model=exp.tracking.log_models)
        tune.report({**final, **info, "final": 1}, checkpoint=tune.Checkpoint.from_directory(tmp))


class _ProgressCallback(tune.Callback):
    """One line per finished trial instead of Ray's per-trial tables."""

    def __init__(self, exp: Experiment, total: int):
        self.exp, self.total = exp, total
        self.done = 0
        self.best = -math.inf

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
        metrics = {k: v for k, v in result.items() if k not in RAY_KEYS and k not in INFO_KEYS}
        self.tracker.log_epoch(trial.trial_id, int(result.get("training_iteration", 0)), metrics)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        tags = {f"ray_unlearn.{k}": last[k] for k in INFO_KEYS[2:] if k in last}
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
    try:
        error = trial.get_error()
    except Exception:  # noqa: BLE001 - best effort: the error file may be gone
        error = None
    return _last_line(str(error) if error is not None else "trial raised an error")


class _PicklableLocks:
    """Mixin for Optuna samplers that hold a thread lock (NSGAIISampler since optuna 5.1).

    Ray Tune pickles its searcher when the Tuner is built and at every experiment
    snapshot; a lock cannot be pickled, so it travels as a marker and a new lock is
    made on unpickling (a lock's held state means nothing in another process).
    """

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key, value in state.items():
            if isinstance(value, _LOCK_TYPES):
                state[key] = _LockMarker(reentrant=isinstance(value, _RLOCK_TYPE))
        return state

    def __setstate__(self, state: dict) -> None:
        import threading

        for key, value in state.items():
            if isinstance(value, _LockMarker):
                state[key] = threading.RLock() if value.reentrant else threading.Lock()
        self.__dict__.update(state)


@dataclasses.dataclass(frozen=True)
class _LockMarker:
    reentrant: bool


def _lock_types() -> tuple[type, type]:
    import threading

    return type(threading.Lock()), type(threading.RLock())


_LOCK_TYPE, _RLOCK_TYPE = _lock_types()
_LOCK_TYPES = (_LOCK_TYPE, _RLOCK_TYPE)


class PicklableTPESampler(_PicklableLocks, optuna.samplers.TPESampler):
    pass


class PicklableNSGAIISampler(_PicklableLocks, optuna.samplers.NSGAIISampler):
    pass


class PicklableRandomSampler(_PicklableLocks, optuna.samplers.RandomSampler):
    pass


def make_sampler(kind: str, seed: int, objectives: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler a sweep uses, in a form Ray Tune can pickle (whatever the optuna release)."""
    if kind == "random":
        return PicklableRandomSampler(seed=seed)
    if objectives > 1:
        return PicklableNSGAIISampler(seed=seed)
    return PicklableTPESampler(seed=seed)


def build_searcher(exp: Experiment) -> Any:
    from ray.tune.search.optuna import OptunaSearch

    if not exp.searched():
        raise ConfigError("search", "is empty: nothing to tune; add hyperparameters to search, or use `ray-unlearn run`")
    goals = targets(exp.objective)
    sampler = make_sampler(exp.tune.sampler, exp.tune.seed, len(goals))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = [m for m, _ in goals] if len(goals) > 1 else goals[0][0]
    mode = [d for _, d in goals] if len(goals) > 1 else goals[0][1]
    if exp.multi:
        space: Any = MethodChoiceSpace(exp)
    else:
        space = {name: dim.to_optuna() for name, dim in exp.search.items()}
    return OptunaSearch(space=space, metric=metric, mode=mode, sampler=sampler, points_to_evaluate=exp.warm_start() or None)


class MethodChoiceSpace:
    """Optuna define-by-run space: the method as a categorical choice, each method's
    hyperparameters conditional on it. A class, not a closure: Tune pickles its searcher."""

    def __init__(self, exp: Experiment):
        self.exp = exp

    def __call__(self, trial: Any) -> None:
        method = trial.suggest_categorical("method", [m.name for m in self.exp.methods])
        for key, dim in self.exp.spec(method).search.items():
            dim.suggest(trial, f"{method}.{key}")


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
    num_samples: int | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    verbose: int = 0,
) -> SweepOutcome:
    """Run (or, with `resume`, continue) the sweep on the Ray instance `ensure_ray` connected to."""
    trainable = tune.with_parameters(_trainable, exp=exp, refs=refs, cache_root=cache_root)
    resources = {"cpu": exp.tune.resources.cpu, "gpu": exp.tune.resources.gpu}
    trainable = tune.with_resources(trainable, resources)
    total = num_samples or exp.tune.num_samples
    path = sweep_path(storage_path, name)
    if resume:
        TrialNamer.continue_from(name, tracker.next_ordinal())
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
        logger.info("resuming sweep %s from %s", name, path)
    else:
        concurrency = exp.tune.max_concurrent or default_concurrency(exp)
        namer = TrialNamer(exp, name)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=build_searcher(exp),
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
                callbacks=[_TrackingCallback(exp, tracker), _ProgressCallback(exp, total), *callbacks],
                failure_config=tune.FailureConfig(max_failures=exp.tune.max_failures),
                verbose=verbose,
                progress_reporter=None,
            ),
        )
        logger.info("sweep %s: %d trials, %d at a time, %s per trial", name, total, concurrency, resources)
    with warnings.catch_warnings():  # a resumed trial re-reports epochs Optuna has seen
        warnings.filterwarnings("ignore", message=".*is already reported.*")
        grid = tuner.fit()
    rows = collect_rows(exp, grid)
    tracker.drop_orphans({r["run_name"] for r in rows})
    return SweepOutcome(rows=rows, parent_run_id=tracker.parent_id, storage_dir=path, errors=grid.num_errors)


def sweep_path(storage_path: str, name: str) -> str:
    return f"{storage_path.rstrip('/')}/{name}" if "://" in storage_path else str(Path(storage_path) / name)


def latest_sweep_name(storage_path: str, prefix: str) -> str | None:
    """The newest resumable sweep `<prefix>-<time>` under a local storage path."""
    if "://" in storage_path:
        return None
    found = sorted(p.name for p in Path(storage_path).glob(f"{prefix}-*") if (p / "tuner.pkl").exists())
    return found[-1] if found else None


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


# --- the re-check rung -----------------------------------------------------------------------

def _prepare_seed(exp: Experiment, cache_root: str) -> Any:
    """One re-check seed's references in a Ray worker (trained once, then read from the shared cache)."""
    import torch

    from .cache import Store
    from .references import prepare

    torch.set_num_threads(max(1, int(exp.tune.resources.cpu)))
    return prepare(exp, Store(cache_root), trial_device(exp.tune.resources.gpu))[0]


def _recheck_job(exp: Experiment, refs: Any, config: dict, cache_root: str) -> Any:
    """One candidate on one re-check seed, in a Ray worker."""
    import torch

    from .cache import Store
    from .recheck import run_job

    torch.set_num_threads(max(1, int(exp.tune.resources.cpu)))
    return run_job(exp, refs, config, device=trial_device(exp.tune.resources.gpu), memo=Store(cache_root).memo(refs.key))


def recheck_runner(cache_root: str) -> Any:
    """A re-check `Runner`: every seed's references prepared in parallel (Ray tasks, cached), then every
    (candidate, seed) run as a Ray task with the sweep's resources; results in the order they finish."""

    def run(exp: Experiment, jobs: Sequence[Any]) -> Any:
        import ray

        from .recheck import SeedResult

        res = exp.tune.resources
        prepare_seed = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu)(_prepare_seed)
        references = {seed: prepare_seed.remote(exp.reseeded(seed), cache_root) for seed in sorted({j.seed for j in jobs})}
        job_task = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu, max_retries=exp.tune.max_failures)(_recheck_job)
        pending = {job_task.remote(exp.reseeded(j.seed), references[j.seed], dict(j.config), cache_root): j for j in jobs}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - a run that raised fails its seed, not the sweep
                        result = SeedResult("failed", {}, _last_line(str(err)))
                    yield job, result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    return run


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:2000] if lines else text[:2000]


# --- audit populations ----------------------------------------------------------------------

def _train_member(exp: Experiment, refs: Any, member: Any, cache_root: str) -> tuple[Any, bool]:
    """One audit population model in a Ray worker (trained, or read from the shared cache)."""
    import torch

    from .cache import Store
    from .tasks import get_task

    torch.set_num_threads(max(1, int(exp.tune.resources.cpu)))
    return get_task(exp.task).audit_member(exp, refs, member, Store(cache_root), trial_device(exp.tune.resources.gpu))


def population_runner(address: str | None = None, progress: Any = None) -> Any:
    """An audit `Runner` that trains the missing population models as Ray tasks with the sweep's
    resources (`tune.resources`: fractional GPUs pack several on one device), members already in
    the cache are read on the driver."""

    def run(exp: Experiment, refs: Any, members: Sequence[Any], cache_root: str) -> list[Any]:
        import ray

        from .cache import Store

        store = Store(cache_root)
        out: list[Any] = [None] * len(members)
        missing = []
        for i, m in enumerate(members):
            found = store.get(m.key(refs.key, exp), ["stats"])
            if found is not None:
                out[i] = found[0]["stats"]
            else:
                missing.append(i)
        if not missing:
            return out
        ensure_ray(address)
        res = exp.tune.resources
        task = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu, max_retries=2)(_train_member)
        exp_ref, refs_ref = ray.put(exp), ray.put(refs)
        pending = {task.remote(exp_ref, refs_ref, members[i], cache_root): i for i in missing}
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                out[i], _trained = ray.get(ref)
                done += 1
                if progress is not None:
                    progress(done, len(missing), members[i])
        return out

    return run
