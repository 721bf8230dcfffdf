"""The sweep: Ray Tune schedules trials, Optuna proposes hyperparameters.

The only module that imports ray.tune. References and data reach trials once
through the object store (`tune.with_parameters`), never retrained; actors
are reused so torch import and set-up are paid once per worker; a Tune
callback hands every event to `tracking.SweepTracker` on the driver.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

# Ray's newer console output prints a table per trial result; we print one line per trial instead.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Tune's experiment snapshots grow with the trials (every trial's state, the pickled Optuna study) and
# nothing reads them: --resume reads MLflow (run_sweep). One a minute, as a record for Tune's own tools.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "60")
# A stop signal is ours to handle (interrupt.py): the sweep stops the same way for SIGINT, SIGTERM and SIGHUP.
os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
# Tune's own per-result files (result.json, progress.csv, a TensorBoard event file) duplicate what
# MLflow records and cost the driver ~1 s of CPU per 32 digits trials (bench/sweep.py trials; driver
# CPU 9.8 s -> 8.6 s in one run), CPU the trials need on a small machine. Set it to 0 to get them back.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
if os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1":  # the result grid then warns once per trial about them
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)

import optuna  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402

from . import interrupt
from .config import Experiment
from .errors import ConfigError, DeviceError
from .objective import WORST_SCORE, targets
from .tasks import get_task
from .tracking.vocabulary import INFO, TRIAL_CONFIG, info_tags, method_tags

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
    rows: list[dict[str, Any]]  # one per finished trial, best first
    parent_run_id: str | None
    storage_dir: str
    errors: int
    total: int = 0  # the trials the sweep is to run (finished or not)
    interrupted: int | None = None  # the stop signal's number, if one stopped it
    rechecked: list[Any] = dataclasses.field(default_factory=list)  # recheck.Candidate, robust best first
    recheck_seconds: float = 0.0


CONNECT_TIMEOUT = 30.0  # seconds `--address` may take to answer (`--connect-timeout`)


def ensure_ray(address: str | None, num_cpus: int | None = None, connect_timeout: float | None = None) -> None:
    """Connect to `address` (a cluster; checked to answer within `connect_timeout` seconds first, since
    `ray.init` retries a dead address for many minutes) or start a local instance."""
    import ray

    if ray.is_initialized():
        return
    if address:
        wait_for_cluster(address, CONNECT_TIMEOUT if connect_timeout is None else connect_timeout)
        ray.init(address=address, log_to_driver=True)
    elif os.environ.get("RAY_ADDRESS"):  # a `ray job submit` driver: its job's cluster
        ray.init(log_to_driver=True)
    else:  # a new instance of our own, never a cluster someone started on this machine with `ray start`
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    interrupt.install()  # ray.init put its own SIGTERM handler in place of ours
    _worker_logs_to_stderr()


def _worker_logs_to_stderr() -> None:
    """What Ray forwards from workers and raylets (a lost node's dump, a trial's prints) goes to stderr:
    stdout holds the command's own tables, which scripts read. Ray's private hook; left as it is if it moved."""
    try:
        from ray._private import worker

        original = getattr(worker.print_to_stdstream, "__wrapped__", worker.print_to_stdstream)

        def to_stderr(data: dict, ignore_prefix: bool) -> None:
            original({**data, "is_err": True}, ignore_prefix=ignore_prefix)

        to_stderr.__wrapped__ = original  # type: ignore[attr-defined]
        worker.print_to_stdstream = to_stderr  # what the error listener calls (a lost raylet's dump)
        dispatcher = worker.global_worker_stdstream_dispatcher
        dispatcher.remove_handler("ray_print_logs")
        dispatcher.add_handler("ray_print_logs", lambda data: to_stderr(data, ignore_prefix=False))
    except (ImportError, AttributeError, KeyError, TypeError) as err:
        logger.debug("Ray's worker logs stay on their own streams: %s", err)


def wait_for_cluster(address: str, timeout: float) -> None:
    """Return once the Ray cluster at `address` accepts a connection; ClusterError after `timeout` seconds."""
    import socket

    from .errors import ClusterError

    target = cluster_endpoint(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(target, timeout=max(0.5, min(5.0, deadline - time.monotonic()))):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ClusterError(f"--address {address}: no Ray cluster answers at {target[0]}:{target[1]} "
                                   f"({err.strerror or err}) within {timeout:g} s; start one (`ray start --head`) or fix the "
                                   "address (--connect-timeout sets the wait)") from None
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def cluster_endpoint(address: str) -> tuple[str, int]:
    """(host, port) of the GCS (or Ray client server) `address` names; `auto` is the cluster `ray start` made here."""
    from .errors import ClusterError

    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or _current_cluster()
        if not address:
            raise ClusterError("--address auto: no Ray cluster was started on this machine (`ray start --head`) and "
                               "RAY_ADDRESS is not set")
    bare = address.split("://", 1)[-1]
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address}: expected host:port (e.g. 10.0.0.5:6379), ray://host:port or auto")
    return host, int(port)


def _current_cluster() -> str | None:
    import tempfile

    path = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray" / "ray_current_cluster"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def default_concurrency(exp: Experiment) -> int:
    """As many trials as the cluster's resources hold (at least one)."""
    import ray

    res = ray.cluster_resources()
    want = exp.tune.resources
    slots = [res.get("CPU", 1.0) / want.cpu]
    if want.gpu > 0:
        slots.append(res.get("GPU", 0.0) / want.gpu)
    return max(1, int(math.floor(min(slots) + 1e-9)))


CPU_FALLBACK = "RAY_UNLEARN_CPU_FALLBACK"  # "1": a trial that asked for a GPU and sees none runs on the CPU


def trial_device(gpu: float) -> "Any":
    """The trial's torch device: CUDA where `tune.resources.gpu` asks for it. A worker without CUDA is an
    error, not a silent CPU run (a GPU sweep would take days on the CPU); tests that declare logical GPUs
    on a CPU machine set RAY_UNLEARN_CPU_FALLBACK=1."""
    import torch

    if gpu <= 0:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get(CPU_FALLBACK) == "1":
        return torch.device("cpu")
    raise DeviceError(f"tune.resources.gpu is {gpu:g}, but this worker sees no CUDA device (torch {torch.__version__}, "
                      f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}): the trial would train on the "
                      f"CPU. Give the workers a CUDA build of torch, or set tune.resources.gpu: 0 ({CPU_FALLBACK}=1 runs "
                      "such trials on the CPU anyway)")


# Per-trial facts reported beside the metrics: logged to MLflow as tags, not metrics.
INFO_KEYS = ("status", "message", *INFO)  # a result's keys that are not metrics


@dataclasses.dataclass(frozen=True)
class Shared:
    """An object-store reference that a trial resolves once per worker process (`resolve`).

    `tune.with_parameters` would hand every trial its own copy of the references, deserialised again
    in a reused actor (a CIFAR-10 split and two ResNet-18s: about a second per trial); this handle is
    what travels instead, and each worker keeps the one object it resolved."""

    ref: Any


_RESOLVED: dict[str, Any] = {}


def resolve(value: Any) -> Any:
    """`value`, or the object a `Shared` handle names (fetched once per worker process, the last one kept)."""
    if not isinstance(value, Shared):
        return value
    key = value.ref.hex()
    if key not in _RESOLVED:
        import ray

        _RESOLVED.clear()  # one sweep's references at a time
        _RESOLVED[key] = ray.get(value.ref)
    return _RESOLVED[key]


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
    refs = resolve(refs)
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


@dataclasses.dataclass(frozen=True)
class Finished:
    """A trial the sweep already has (read back from MLflow on resume): told to Optuna, never run again."""

    config: dict[str, Any]
    values: tuple[float, ...] | None  # the searcher's targets, or None when the trial failed


class SweepSearch(OptunaSearch):
    """OptunaSearch that also learns trials without running them and results that arrive late.

    `add_finished` adds a finished trial to the study (a resumed sweep's, from MLflow), for
    define-by-run spaces too (several methods); `on_trial_complete` tells Optuna the result of a
    trial Tune first reported as failed and then retried (a node lost mid-trial), which plain
    OptunaSearch drops with a warning.
    """

    def __init__(self, *args: Any, distributions: dict[str, Any], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._distributions = distributions

    def add_finished(self, config: dict[str, Any], values: Sequence[float] | None) -> None:
        params = {k: v for k, v in config.items() if k in self._distributions}
        dists = {k: self._distributions[k] for k in params}
        if values is None:
            trial = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params=params, distributions=dists)
        elif isinstance(self.metric, list):
            trial = optuna.trial.create_trial(params=params, distributions=dists, values=list(values))
        else:
            trial = optuna.trial.create_trial(params=params, distributions=dists, value=values[0])
        self._ot_study.add_trial(trial)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:  # a retried trial: its first attempt was told as failed
            ot_trial = self._ot_trials.get(trial_id)
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            if result and not error and ot_trial is not None and all(m in result for m in metrics):
                self.add_finished(dict(ot_trial.params), [float(result[m]) for m in metrics])
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def distributions(exp: Experiment) -> dict[str, Any]:
    """Every Optuna parameter a trial config of `exp` may hold, with its distribution."""
    if not exp.multi:
        return {name: dim.to_optuna() for name, dim in exp.search.items()}
    out: dict[str, Any] = {"method": optuna.distributions.CategoricalDistribution([m.name for m in exp.methods])}
    for m in exp.methods:
        out.update({f"{m.name}.{key}": dim.to_optuna() for key, dim in m.search.items()})
    return out


def build_searcher(exp: Experiment, finished: Sequence[Finished] = (), rerun: Sequence[dict[str, Any]] = ()) -> Any:
    """The sweep's searcher: Optuna over `search:`, the `start:` points first. A resumed sweep passes the
    trials it has (`finished`: learnt, not run) and those an interruption cut short (`rerun`: run first)."""
    if not exp.searched():
        raise ConfigError("search", "is empty: nothing to tune; add hyperparameters to search, or use `ray-unlearn run`")
    goals = targets(exp.objective)
    # a resumed sweep's sampler starts on another seed: the same seed would propose its first trials again
    sampler = make_sampler(exp.tune.sampler, exp.tune.seed + len(finished), len(goals))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = [m for m, _ in goals] if len(goals) > 1 else goals[0][0]
    mode = [d for _, d in goals] if len(goals) > 1 else goals[0][1]
    dists = distributions(exp)
    space: Any = MethodChoiceSpace(exp) if exp.multi else dict(dists)
    seen = [f.config for f in finished]
    points = [dict(c) for c in rerun] + [p for p in exp.warm_start() if p not in seen and p not in rerun]
    searcher = SweepSearch(space=space, metric=metric, mode=mode, sampler=sampler, points_to_evaluate=points or None,
                           distributions=dists)
    for f in finished:
        searcher.add_finished(f.config, f.values)
    return searcher


class InterruptStopper(tune.Stopper):
    """Stops every trial once a stop signal arrived (interrupt.py); Tune then ends the run gracefully."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return interrupt.requested()


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
        job_task = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu, max_retries=exp.tune.max_failures, max_calls=0)(_recheck_job)
        pending = {job_task.remote(exp.reseeded(j.seed), references[j.seed], dict(j.config), cache_root): j for j in jobs}
        try:
            while pending and not interrupt.requested():
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
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
        # max_calls=0: a worker trains member after member (Ray's default for GPU tasks is a fresh process,
        # CUDA context and upload per task)
        task = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu, max_retries=2, max_calls=0)(_train_member)
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
