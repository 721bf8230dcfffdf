"""MLflow: the only module that imports it.

The driver is the only writer (a local SQLite store never sees concurrent
writers; workers need no route to the tracking server). Per sweep: a parent
run with the config, search space, reference metrics and a ranked table; per
trial: a child run (`mlflow.parentRunId`) with hyperparameters as params,
per-epoch metrics with step, final metrics, and tags method / dataset /
trial id / status. The best child is tagged `best=true` and its score copied
to the parent.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import quote

from .errors import TrackingError

logger = logging.getLogger(__name__)

KIND = "ray_unlearn.kind"  # sweep | trial | run
TRIAL_ID = "ray_unlearn.trial_id"
STATUS = "ray_unlearn.status"
METHOD = "ray_unlearn.method"
DATASET = "ray_unlearn.dataset"
HYPERPARAMS = "ray_unlearn.hyperparameters"  # JSON, exact types, for `best --export`
SEED = "ray_unlearn.seed"
SWEEP = "ray_unlearn.sweep"  # the Ray Tune experiment name, to find the parent again on --resume
NUM_SAMPLES = "ray_unlearn.num_samples"  # the trials the sweep is to run (a resumed sweep may extend it)
TRIAL_CONFIG = "ray_unlearn.trial_config"  # JSON: the trial's config as the searcher proposed it
INTERRUPTED = "interrupted"  # the status of a trial, and of a sweep, that a stop signal cut short
FINISHED_TRIALS = "trials_finished"
CREATED_BY = "ray_unlearn.created_by"  # a nonce per parent-run creation: its re-sent copies carry it too
BEST = "best"
# the re-check rung: per seed, a status tag and `recheck_<metric>_s<seed>` metrics on the candidate's child run
RECHECK_STATUS = "ray_unlearn.recheck_status_s"
RECHECK_MESSAGE = "ray_unlearn.recheck_message_s"
ROBUST_SCORE = "recheck_score_mean"  # the mean score over the sweep's seed and the re-check seeds
PARENT = "mlflow.parentRunId"
NOTE = "mlflow.note.content"
# MLflow's UI opens a runs table with the columns, sort and filter saved in this experiment tag when the
# link names its key (`?viewStateShareKey=<key>`): the link `tune` prints shows why a run ranks where it does.
SHARED_VIEW = "mlflow.sharedViewState."

DEFAULT_URI = "sqlite:///mlflow.db"
LOCAL_UI = "http://127.0.0.1:5000"  # where `ray-unlearn ui` serves a local store
# MLflow prints "View run ... at: http://..." for every run it ends against a server; ours prints one link.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# ... and a progress bar for every artifact it downloads (a run's config.yaml for `best --export`, `audit`).
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def resolve_uri(uri: str | None) -> str:
    """Absolute store URI: a relative sqlite path means different files in different processes."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri[len("sqlite:///"):]).expanduser().resolve()
        return f"sqlite:///{path}"
    if "://" not in uri:  # a bare path: a SQLite file
        return f"sqlite:///{Path(uri).expanduser().resolve()}"
    return uri


SERVER_CHECK_SECONDS = 10.0  # how long an http(s) tracking server may take to answer /health before we give up
STORE_CREATION_TRIES = 6


def check_reachable(uri: str, create: bool) -> None:
    """Fail in seconds, before anything is trained, on a tracking server that does not answer (MLflow's
    own client retries for minutes), or, for a reader (`create=False`), a SQLite store that does not exist
    (which MLflow would create)."""
    import urllib.error
    import urllib.request

    if uri.startswith("sqlite:///") and not create:
        path = Path(uri[len("sqlite:///"):])
        if not path.exists():
            raise TrackingError(f"no MLflow store at {path} (nothing was tracked there yet); give --tracking-uri")
    if not uri.startswith(("http://", "https://")):
        return
    deadline = time.monotonic() + SERVER_CHECK_SECONDS
    while True:
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=max(0.5, min(5.0, deadline - time.monotonic()))).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (a proxy without /health, a 401 before credentials): MLflow's client takes it from here
        except (OSError, ValueError) as err:
            if time.monotonic() >= deadline:
                reason = getattr(err, "reason", err)
                raise TrackingError(f"the MLflow tracking server {uri} does not answer ({reason}) within "
                                    f"{SERVER_CHECK_SECONDS:g} s; start it, or fix --tracking-uri") from None
            time.sleep(0.5)


def _creation_race(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}"
    return "already exists" in text or "CircularDependencyError" in text or "database is locked" in text


@contextlib.contextmanager
def _store_creation_lock(uri: str) -> Iterator[None]:
    """Serialise the first use of a SQLite store between processes of this machine: two sweeps started
    at once in a fresh directory would both create its tables (`table ... already exists`)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl
    import hashlib

    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"ray_unlearn-store-{digest}.lock"  # beside no user file
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # an unwritable directory: the store's own error says it better
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# MLflow error codes of a server that is down, restarting, overloaded or briefly locked: worth retrying.
# Anything else (a bad value, a missing run, refused credentials, a bug of ours) fails at once.
RETRYABLE_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "IO_ERROR", "SERVICE_UNDER_MAINTENANCE", "DEADLINE_EXCEEDED",
                   "ABORTED", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED", "COULD_NOT_ACQUIRE_LOCK", "UNPARSEABLE_HTTP_ERROR"}


def retryable(err: BaseException) -> bool:
    """Whether a failed MLflow call may succeed later: network and server errors, not bad requests."""
    if isinstance(err, (OSError, TimeoutError)):  # connection refused/reset, requests' errors, a full disk
        return True
    if type(err).__module__.split(".")[0] == "sqlalchemy":  # a local store's "database is locked"
        return True
    code = getattr(err, "error_code", None)
    return isinstance(code, str) and code in RETRYABLE_CODES


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else ""


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _metrics_batch(metrics: Mapping[str, Any], step: int) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(key, float(value), now, step)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
    ]


def _params_batch(params: Mapping[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(str(k), str(v)[:6000]) for k, v in params.items()]


def _tags_batch(tags: Mapping[str, Any]) -> list:
    from mlflow.entities import RunTag

    return [RunTag(str(k), str(v)) for k, v in tags.items()]


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class Tracker:
    """Writes one experiment's runs. Every call is a batch: one round trip per event."""

    def __init__(self, uri: str | None, experiment: str, *, create: bool = True):
        self.uri = resolve_uri(uri)
        self.experiment_name = experiment
        self._client = None
        check_reachable(self.uri, create=create)
        with _store_creation_lock(self.uri):
            self.experiment_id = self._experiment_id(create=create)

    @property
    def client(self):
        if self._client is None:
            self._client = _client(self.uri)
        return self._client

    def __getstate__(self) -> dict:
        # Ray Tune pickles its callbacks with the experiment state (for --resume): drop the live client
        state = self.__dict__.copy()
        state["_client"] = None
        return state

    def _experiment_id(self, create: bool) -> str:
        for attempt in range(STORE_CREATION_TRIES):
            try:
                return self._find_or_create(create)
            except TrackingError:
                raise
            except Exception as err:  # noqa: BLE001 - sorted out below
                # another process creating the same fresh SQLite store's tables ("already exists",
                # SQLAlchemy's CircularDependencyError): it finishes within moments, then it just works
                if attempt + 1 < STORE_CREATION_TRIES and _creation_race(err):
                    self._client = None
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise TrackingError(f"cannot use the MLflow store {self.uri}: {type(err).__name__}: "
                                    f"{str(err).splitlines()[0][:300]}") from None
        raise AssertionError("unreachable")

    def _find_or_create(self, create: bool) -> str:
        try:
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    self.client.restore_experiment(found.experiment_id)
                return found.experiment_id
            if not create:
                raise TrackingError(f"no MLflow experiment named {self.experiment_name!r} in {self.uri}")
            return self.client.create_experiment(self.experiment_name)
        except Exception as err:
            if create and type(err).__name__ == "MlflowException" and "already exists" in str(err):
                found = self.client.get_experiment_by_name(self.experiment_name)  # another sweep created it just now
                if found is not None:
                    return found.experiment_id
            raise

    def start_run(self, name: str, tags: Mapping[str, Any], parent_id: str | None = None) -> str:
        all_tags = dict(tags)
        if parent_id:
            all_tags[PARENT] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()})
        return run.info.run_id

    def log(self, run_id: str, *, metrics: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
            tags: Mapping[str, Any] | None = None, step: int = 0) -> None:
        self.client.log_batch(
            run_id,
            metrics=_metrics_batch(metrics or {}, step),
            params=_params_batch(params or {}),
            tags=_tags_batch(tags or {}),
        )

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def runs_url(self, server_url: str, parent_id: str | None = None) -> str:
        """Deep link to this experiment's runs table sorted by score, best first; the sweep's own view
        (`share_sweep_view`: its columns and ranking) when there is one."""
        if parent_id and self.client.get_experiment(self.experiment_id).tags.get(f"{SHARED_VIEW}{view_key(parent_id)}"):
            return f"{server_url.rstrip('/')}/#/experiments/{self.experiment_id}/runs?viewStateShareKey={view_key(parent_id)}"
        query = "workflowType=machine_learning&orderByKey=metrics.%60score%60&orderByAsc=false"
        if parent_id:
            query += "&searchFilter=" + quote(f"tags.mlflow.parentRunId = '{parent_id}'", safe="")
        return f"{server_url.rstrip('/')}/#/experiments/{self.experiment_id}/runs?{query}"

    def compare_url(self, server_url: str, run_ids: Iterable[str]) -> str:
        """MLflow's compare page of `run_ids`: their parameters and metrics side by side, a parallel-coordinates plot."""
        runs = quote(json.dumps(list(run_ids), separators=(",", ":")), safe="")
        return f"{server_url.rstrip('/')}/#/compare-runs?runs={runs}&experiments={quote(json.dumps([self.experiment_id]), safe='')}"

    def share_sweep_view(self, parent_id: str, *, metrics: Iterable[str], params: Iterable[str] = (), tags: Iterable[str] = (),
                         order_by: str | None = None) -> None:
        """Save the runs-table view of a sweep's trials (these columns in this order, best first by `order_by`)
        as an experiment tag; the columns and order of a view saved earlier are kept (the audit adds its own)."""
        key = f"{SHARED_VIEW}{view_key(parent_id)}"
        saved = json.loads(self.client.get_experiment(self.experiment_id).tags.get(key) or "{}")
        columns = list(saved.get("columnOrder", []))
        order_by = f"metrics.`{order_by}`" if order_by else saved.get("orderByKey", "metrics.`score`")
        for group, names in (("metrics", metrics), ("params", params), ("tags", tags)):
            columns += [c for c in (f"{group}.`{n}`" for n in names) if c not in columns]
        columns.sort(key=lambda c: ("metrics", "params", "tags").index(c.split(".", 1)[0]))  # the UI groups them so
        state = {"searchFilter": f"tags.{PARENT} = '{parent_id}'", "orderByKey": order_by,
                 "orderByAsc": False, "selectedColumns": columns, "columnOrder": columns}
        self.client.set_experiment_tag(self.experiment_id, key, json.dumps(state))


class BackgroundWriter:
    """One thread that performs MLflow writes in order, retrying each with backoff.

    Trial events arrive in Ray Tune's driver loop, which schedules the next trial only
    after its callbacks return: queued, an MLflow round trip no longer delays scheduling.
    A tracking server that goes away is retried (0.5 s, 1 s, 2 s, ... every MAX_DELAY s, up to
    `patience` seconds per write); meanwhile later writes wait in the queue, so nothing is lost
    or reordered. A write still failing after that, or failing for a reason a retry cannot fix
    (a rejected value, a missing run: `retryable`), is logged and dropped.
    """

    MAX_DELAY = 10.0  # a server back from an outage is written to within this many seconds

    def __init__(self, patience: float = 600.0):
        self.patience = patience
        self.queue: queue.Queue = queue.Queue()
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, name="mlflow-writer", daemon=True)
        self.thread.start()

    def submit(self, fn: Callable, *args: Any, **kwargs: Any) -> None:
        self.queue.put((fn, args, kwargs))

    def drain(self) -> None:
        self.queue.join()

    def _run(self) -> None:
        while True:
            fn, args, kwargs = self.queue.get()
            try:
                self._attempt(fn, args, kwargs)
            finally:
                self.queue.task_done()

    def _attempt(self, fn: Callable, args: tuple, kwargs: dict, *, raise_on_failure: bool = False) -> Any:
        waited, delay = 0.0, 0.5
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - a server or network error: wait and retry
                if waited >= self.patience or not retryable(err):
                    message = f"{getattr(fn, '__name__', fn)}: {type(err).__name__}: {_first_line(err)}"
                    if raise_on_failure:
                        if not retryable(err):
                            raise
                        raise TrackingError(f"MLflow still failing after {waited:.0f} s of retries: {message}") from None
                    self.failures.append(message)
                    logger.error("MLflow write dropped after %.0f s of retries: %s", waited, message)
                    return None
                logger.warning("MLflow write failed (%s); retrying in %.1f s", type(err).__name__, delay)
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, self.MAX_DELAY)

    def call(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run `fn` now, on the calling thread, after every queued write; retried like them, raising if it never succeeds."""
        self.drain()
        return self._attempt(fn, args, kwargs, raise_on_failure=True)


class SweepTracker(Tracker):
    """Parent run per sweep, child run per trial; idempotent per trial id (resume never duplicates).

    Trial events (start, epochs, files, end) are written by a BackgroundWriter; `finish`
    waits for it before ranking.
    """

    def __init__(self, uri: str | None, experiment: str, parent_id: str | None = None):
        super().__init__(uri, experiment)
        self.parent_id = parent_id
        self.children: dict[str, str] = {}
        self.steps: dict[str, int] = {}
        self.pending: dict[str, list] = {}
        self.flushed: dict[str, float] = {}
        self.creating: set[str] = set()  # trials whose child run an interrupted write may have created
        self.open: set[str] = set()  # trials started and not yet ended (driver side)
        self.logged_step: dict[str, int] = {}  # the last per-epoch step written per trial
        self._writer: BackgroundWriter | None = None

    @property
    def writer(self) -> BackgroundWriter:
        if self._writer is None:
            self._writer = BackgroundWriter()
        return self._writer

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_writer"] = None  # a thread does not pickle; a restored tracker starts its own
        return state


    def drain(self) -> None:
        if self._writer is not None:
            self._writer.drain()

    def start_sweep(self, name: str, *, tags: Mapping[str, Any], params: Mapping[str, Any],
                    metrics: Mapping[str, float], files: Mapping[str, str]) -> str:
        commit = git_commit()
        all_tags = {KIND: "sweep", SWEEP: name, **tags}
        if commit:
            all_tags["mlflow.source.git.commit"] = commit
        all_tags[CREATED_BY] = uuid.uuid4().hex
        self.parent_id = self.writer.call(self._create_parent, name, all_tags)
        self.log(self.parent_id, params=params, metrics=metrics)
        for path, text in files.items():
            self.log_text(self.parent_id, text, path)
        return self.parent_id

    def _create_parent(self, name: str, tags: Mapping[str, Any]) -> str:
        """Create the sweep's parent run exactly once, however often the request reached the server.

        A create whose response was lost either reaches us as an error (and this is retried: the
        run it made is found by its nonce) or is re-sent by MLflow's HTTP client (two runs with the
        same nonce): one is kept, the empty copies are deleted.
        """
        mine = f"tags.`{CREATED_BY}` = '{tags[CREATED_BY]}'"
        made = self.client.search_runs([self.experiment_id], filter_string=mine, order_by=["attributes.start_time ASC"])
        parent_id = made[0].info.run_id if made else self.start_run(name, tags)
        for run in self.client.search_runs([self.experiment_id], filter_string=mine):
            if run.info.run_id != parent_id:
                self.client.delete_run(run.info.run_id)
                logger.warning("deleted run %s: a re-sent copy of the sweep's parent run %s", run.info.run_id, parent_id)
        return parent_id

    def resume_sweep(self, name: str) -> str:
        """Reopen the parent run of sweep `name` and learn its existing child runs."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.{KIND} = 'sweep' and tags.`{SWEEP}` = '{name}'", max_results=1
        )
        if not runs:
            raise TrackingError(f"no MLflow parent run for sweep {name!r} in experiment {self.experiment_name!r} ({self.uri})")
        self.parent_id = runs[0].info.run_id
        self.client.update_run(self.parent_id, status="RUNNING")
        self.client.set_tag(self.parent_id, STATUS, "running")
        self.children = self._existing_children()
        return self.parent_id

    def parent_tag(self, key: str) -> str | None:
        return self.client.get_run(self.parent_id).data.tags.get(key)

    def set_parent_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.parent_id, key, value)

    def sweep_exists(self, name: str) -> bool:
        return bool(self.client.search_runs([self.experiment_id], filter_string=f"tags.{KIND} = 'sweep' and tags.`{SWEEP}` = '{name}'",
                                            max_results=1))

    def latest_sweep_name(self) -> str | None:
        """The Ray Tune name of this experiment's newest sweep (what `--resume` continues without --name)."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.{KIND} = 'sweep'",
                                       order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].data.tags.get(SWEEP) if runs else None

    def num_samples(self) -> int | None:
        """The trial count the sweep was started (or last extended) with."""
        value = self.client.get_run(self.parent_id).data.tags.get(NUM_SAMPLES)
        return int(value) if value and value.isdigit() else None

    def set_num_samples(self, total: int) -> None:
        self.writer.call(self.client.set_tag, self.parent_id, NUM_SAMPLES, str(total))

    def trial_records(self) -> list[dict[str, Any]]:
        """Every child run of the sweep as the resumed sweep needs it: trial id, name, status, metrics, the
        trial config (or, for runs written before it was recorded, method and sampled values), and
        whether it finished (ended FINISHED or FAILED, not cut short by an interruption)."""
        self.drain()
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.{PARENT} = '{self.parent_id}'", max_results=50000)
        out = []
        for trial_id, group in _by_trial(runs).items():
            run = _pick(group)
            tags = run.data.tags
            status = tags.get(STATUS, "running")
            hp = json.loads(tags.get(HYPERPARAMS, "{}"))
            searched = [k for k in tags.get("ray_unlearn.searched", "").split(",") if k]
            out.append({
                "trial_id": trial_id, "run_name": run.info.run_name, "status": status, "metrics": dict(run.data.metrics),
                "config": json.loads(tags[TRIAL_CONFIG]) if TRIAL_CONFIG in tags else None,
                "method": tags.get(METHOD), "sampled": {k: hp[k] for k in searched if k in hp},
                "info": {k[len("ray_unlearn."):]: _number(v) for k, v in tags.items() if k in _INFO_TAGS},
                "finished": run.info.status in ("FINISHED", "FAILED") and status not in ("running", INTERRUPTED),
            })
        return out

    def drop_trials(self, trial_ids: Iterable[str], why: str) -> None:
        """Delete (restorably, MLflow's soft delete) the child runs of `trial_ids`."""
        for trial_id in trial_ids:
            run_id = self.children.pop(trial_id, None)
            if run_id is not None:
                self.writer.call(self.client.delete_run, run_id)
                logger.info("deleted child run %s of trial %s: %s", run_id, trial_id, why)

    def end_open_trials(self, interrupted: bool) -> None:
        """End the child runs of trials Tune started but never reported as ended: KILLED with status
        `interrupted` after a stop signal, else FINISHED as `stopped` (a scheduler stopped them)."""
        for trial_id in sorted(self.open):
            if interrupted:
                self.end_trial(trial_id, metrics={}, status=INTERRUPTED, killed=True)
            else:
                self.end_trial(trial_id, metrics={}, status="stopped")
        self.drain()

    def next_ordinal(self) -> int:
        """1 + the highest `<method>-<n>` ordinal among this sweep's child runs (0 if none)."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.{PARENT} = '{self.parent_id}'", max_results=50000)
        ordinals = [int(r.info.run_name.rsplit("-", 1)[-1]) for r in runs if r.info.run_name and r.info.run_name.rsplit("-", 1)[-1].isdigit()]
        return max(ordinals, default=-1) + 1

    def drop_duplicates(self) -> list[str]:
        """Delete the second child run of a trial, so MLflow holds one child per trial (soft delete, restorable).

        A create request whose response was lost and that MLflow's HTTP client re-sent leaves a
        second, empty run for the same trial; the run written to is kept.
        """
        return self.writer.call(self._drop_duplicates)  # after the queued writes, retried like them

    def _drop_duplicates(self) -> list[str]:
        dropped = []
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.{PARENT} = '{self.parent_id}'", max_results=50000)
        for trial_id, group in _by_trial(runs).items():
            keep = _pick(group)
            self.children[trial_id] = keep.info.run_id
            for run in group:
                if run is not keep:
                    self.client.delete_run(run.info.run_id)
                    dropped.append(run.info.run_id)
                    logger.warning("deleted child run %s (%s, %s): a duplicate of %s for the same trial",
                                   run.info.run_id, run.info.run_name, run.info.status, keep.info.run_id)
        return dropped

    def _existing_children(self) -> dict[str, str]:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.{PARENT} = '{self.parent_id}'", max_results=50000
        )
        return {trial_id: _pick(group).info.run_id for trial_id, group in _by_trial(runs).items()}

    def start_trial(self, trial_id: str, name: str, *, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        self.open.add(trial_id)
        self.writer.submit(self._start_trial, trial_id, name, params=dict(params), tags=dict(tags))

    def log_epoch(self, trial_id: str, step: int, metrics: Mapping[str, Any]) -> None:
        self.writer.submit(self._log_epoch, trial_id, step, dict(metrics))

    def log_files(self, trial_id: str, folder: str, artifact_path: str) -> None:
        """Copies `folder` now (it may be a temporary download) and uploads it in the background."""
        copy = tempfile.mkdtemp(prefix="ray-unlearn-trial-")
        shutil.copytree(folder, copy, dirs_exist_ok=True)

        def upload() -> None:
            self._log_files(trial_id, copy, artifact_path)
            shutil.rmtree(copy, ignore_errors=True)

        self.writer.submit(upload)

    def end_trial(self, trial_id: str, **kwargs: Any) -> None:
        self.open.discard(trial_id)
        self.writer.submit(self._end_trial, trial_id, **kwargs)

    def _start_trial(self, trial_id: str, name: str, *, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
        run_id = self.children.get(trial_id)
        if trial_id not in self.creating:
            if run_id is not None:  # resumed or retried: keep logging into the same child run
                self.log(run_id, tags={STATUS: "running"})
                return run_id
        elif run_id is None:  # a retried write: the server may have created the run before the error
            run_id = self._existing_children().get(trial_id)
        self.creating.add(trial_id)
        if run_id is None:
            run_id = self.start_run(name, {KIND: "trial", TRIAL_ID: trial_id, STATUS: "running", **tags}, parent_id=self.parent_id)
        self.children[trial_id] = run_id
        self.log(run_id, params=params)
        self.creating.discard(trial_id)
        self.flushed[trial_id] = time.monotonic()  # its first epochs wait for the next flush, as later ones do
        return run_id

    # Per-epoch metrics are buffered and written in one log_batch at most every FLUSH_SECONDS
    # (and at the trial's end): the driver's Tune loop waits on every MLflow round trip.
    FLUSH_SECONDS = 5.0
    MAX_BATCH = 900  # MLflow's log_batch takes up to 1000 metrics

    def _log_epoch(self, trial_id: str, step: int, metrics: Mapping[str, Any]) -> None:
        run_id = self.children.get(trial_id)
        if run_id is None:
            return
        if step <= self.logged_step.get(trial_id, 0):
            return  # a retried attempt repeats the epochs of the first (same config, same seed): written once
        self.logged_step[trial_id] = step
        self.steps[trial_id] = max(step, self.steps.get(trial_id, 0))
        pending = self.pending.setdefault(trial_id, [])
        pending.extend(_metrics_batch(metrics, step))  # buffering cannot fail: a retry never doubles a point
        if time.monotonic() - self.flushed.get(trial_id, 0.0) > self.FLUSH_SECONDS or len(pending) > self.MAX_BATCH:
            self.writer._attempt(self.flush, (trial_id,), {})

    def flush(self, trial_id: str) -> None:
        """Write a trial's buffered points; they leave the buffer only once written."""
        pending = self.pending.get(trial_id, [])
        run_id = self.children.get(trial_id)
        while pending:
            self.client.log_batch(run_id, metrics=pending[: self.MAX_BATCH])
            del pending[: self.MAX_BATCH]
        self.flushed[trial_id] = time.monotonic()

    def _log_files(self, trial_id: str, folder: str, artifact_path: str) -> None:
        run_id = self.children.get(trial_id)
        if run_id is not None:
            self.client.log_artifacts(run_id, folder, artifact_path)

    def _end_trial(self, trial_id: str, *, metrics: Mapping[str, Any], status: str, message: str = "",
                   failed: bool = False, killed: bool = False, tags: Mapping[str, Any] | None = None) -> None:
        run_id = self.children.get(trial_id)
        if run_id is None:
            return
        tags = {**(tags or {}), STATUS: status}
        if message:
            tags["ray_unlearn.message"] = message[:5000]
        # the buffered epochs, the final metrics and the tags in one write (two round trips per trial's end)
        pending = self.pending.setdefault(trial_id, [])
        pending.extend(_metrics_batch(metrics, self.steps.get(trial_id, 0)))
        while len(pending) > self.MAX_BATCH:
            self.client.log_batch(run_id, metrics=pending[: self.MAX_BATCH])
            del pending[: self.MAX_BATCH]
        self.client.log_batch(run_id, metrics=pending, tags=_tags_batch(tags))
        pending.clear()
        self.end_run(run_id, "FAILED" if failed else "KILLED" if killed else "FINISHED")

    def recheck_results(self, trial_ids: Iterable[str]) -> dict[tuple[str, int], dict[str, Any]]:
        """(trial id, seed) -> {status, metrics, message} of every re-check run already recorded (a resumed sweep's)."""
        self.drain()
        self.children.update(self._existing_children())
        out = {}
        for trial_id in trial_ids:
            run_id = self.children.get(trial_id)
            if run_id is not None:
                for seed, result in _recheck_seeds(self.client.get_run(run_id)).items():
                    out[(trial_id, seed)] = result
        return out

    def log_recheck_seed(self, trial_id: str, seed: int, *, status: str, metrics: Mapping[str, Any], message: str) -> None:
        """One re-check run's result, recorded as it arrives (a resumed sweep does not run it again)."""
        tags = {f"{RECHECK_STATUS}{seed}": status, **({f"{RECHECK_MESSAGE}{seed}": message[:5000]} if message else {})}
        self.writer.submit(self._log_to_trial, trial_id, {recheck_metric(k, seed): v for k, v in metrics.items()}, tags)

    def log_recheck(self, trial_id: str, *, mean: float, std: float, table: str) -> None:
        """A candidate's robust score and its per-seed table (`recheck/seeds.csv`)."""
        self.writer.submit(self._log_to_trial, trial_id, {ROBUST_SCORE: mean, "recheck_score_std": std}, {}, table)

    def _log_to_trial(self, trial_id: str, metrics: Mapping[str, Any], tags: Mapping[str, Any], table: str | None = None) -> None:
        run_id = self.children.get(trial_id)
        if run_id is None:
            logger.warning("no MLflow run for trial %s: its re-check figures are not recorded", trial_id)
            return
        self.log(run_id, metrics=metrics, tags=tags)
        if table is not None:
            self.log_text(run_id, table, "recheck/seeds.csv")

    def finish(self, ranked: list[dict[str, Any]], *, note: str, files: Mapping[str, str], images: list | None = None,
               interrupted: bool = False) -> None:
        """Tag the best child, copy its score to the parent, attach the ranked table, close the parent.

        An interrupted sweep tags no best and ends KILLED with status `interrupted` and its finished count."""
        assert self.parent_id is not None
        self.writer.call(self._finish, ranked, note=note, files=files, images=images, interrupted=interrupted)

    def _finish(self, ranked: list[dict[str, Any]], *, note: str, files: Mapping[str, str], images: list | None,
                interrupted: bool) -> None:
        self.children.update(self._existing_children())
        for run in self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.{PARENT} = '{self.parent_id}' and tags.{BEST} = 'true'"
        ):
            self.client.set_tag(run.info.run_id, BEST, "false")
        metrics: dict[str, Any] = {FINISHED_TRIALS: len(ranked)}
        if interrupted:
            self.log(self.parent_id, metrics=metrics, tags={NOTE: note, STATUS: INTERRUPTED})
            for path, text in files.items():
                self.log_text(self.parent_id, text, path)
            self.end_run(self.parent_id, "KILLED")
            return
        if ranked:
            best = ranked[0]
            best_run = self.children.get(best["trial_id"])
            if best_run:
                self.client.set_tag(best_run, BEST, "true")
            metrics.update({"score": best["score"], "best_score": best["score"], "trials": len(ranked)})
            if ROBUST_SCORE in best:
                metrics[ROBUST_SCORE] = best[ROBUST_SCORE]
        self.log(self.parent_id, metrics=metrics, tags={NOTE: note, STATUS: "finished"})
        for path, text in files.items():
            self.log_text(self.parent_id, text, path)
        for image in images or []:
            self.client.log_artifact(self.parent_id, str(image), "plots")
        self.end_run(self.parent_id, "FINISHED")


def ui_base(uri: str) -> str:
    """The web address a store's links point at: the tracking server itself, else `ray-unlearn ui`'s."""
    return uri if uri.startswith("http") else LOCAL_UI


def view_key(parent_id: str) -> str:
    return f"ray-unlearn-{parent_id}"


def recheck_metric(metric: str, seed: int) -> str:
    return f"recheck_{metric}_s{seed}"


def _recheck_seeds(run: Any) -> dict[int, dict[str, Any]]:
    """The re-check results recorded on a child run: seed -> {status, metrics, message}."""
    found = {}
    for tag, status in run.data.tags.items():
        if tag.startswith(RECHECK_STATUS) and tag[len(RECHECK_STATUS):].isdigit():
            seed = int(tag[len(RECHECK_STATUS):])
            suffix = f"_s{seed}"
            metrics = {k[len("recheck_"):-len(suffix)]: v for k, v in run.data.metrics.items()
                       if k.startswith("recheck_") and k.endswith(suffix)}
            found[seed] = {"status": status, "metrics": metrics, "message": run.data.tags.get(f"{RECHECK_MESSAGE}{seed}", "")}
    return found


_INFO_TAGS = {f"ray_unlearn.{k}" for k in ("device", "cuda_visible_devices", "node_id", "trial_started", "trial_finished")}


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _by_trial(runs: Iterable[Any]) -> dict[str, list]:
    groups: dict[str, list] = {}
    for run in runs:
        if TRIAL_ID in run.data.tags:
            groups.setdefault(run.data.tags[TRIAL_ID], []).append(run)
    return groups


def _pick(runs: list) -> Any:
    """Of several child runs of one trial, the one its events were written to: with params, ended, newest."""
    return max(runs, key=lambda r: (bool(r.data.params), r.info.status in ("FINISHED", "FAILED"), r.info.start_time or 0))


def log_single_run(uri: str | None, experiment: str, name: str, *, params: Mapping[str, Any], metrics: Mapping[str, Any],
                   tags: Mapping[str, Any], files: Mapping[str, str], failed: bool = False) -> tuple[str, str]:
    """One `ray-unlearn run`: a standalone run. Returns (run id, store URI)."""
    tracker = Tracker(uri, experiment)
    run_id = tracker.start_run(name, {KIND: "run", **tags})
    tracker.log(run_id, params=params, metrics=metrics)
    for path, text in files.items():
        tracker.log_text(run_id, text, path)
    tracker.end_run(run_id, "FAILED" if failed else "FINISHED")
    return run_id, tracker.uri


def latest_sweep(uri: str | None, experiment: str) -> str | None:
    """The newest sweep parent run of `experiment`, if any."""
    tracker = Tracker(uri, experiment, create=False)
    runs = tracker.client.search_runs([tracker.experiment_id], filter_string=f"tags.{KIND} = 'sweep'",
                                      order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None


def ranked_runs(uri: str | None, experiment: str, *, top: int = 10, metric: str = "score", ascending: bool = False,
                method: str | None = None, parent_id: str | None = None) -> list[dict[str, Any]]:
    """Finished sweep trials of `experiment`, best first by `metric` (a `ray-unlearn run`, e.g. the reproduction
    of a trial, is not a trial of a sweep and is not ranked among them)."""
    tracker = Tracker(uri, experiment, create=False)
    filters = [f"tags.{KIND} = 'trial'", "attributes.status = 'FINISHED'"]
    if method:
        filters.append(f"tags.{METHOD} = '{method}'")
    if parent_id:
        filters.append(f"tags.{PARENT} = '{parent_id}'")
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=" and ".join(filters),
        order_by=[f"metrics.`{metric}` {'ASC' if ascending else 'DESC'}"],
        max_results=max(top, 1),
    )
    rows = []
    for r in runs:
        if metric not in r.data.metrics:
            continue
        rows.append({
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "parent_id": r.data.tags.get(PARENT),
            "method": r.data.tags.get(METHOD),
            "status": r.data.tags.get(STATUS),
            "best": r.data.tags.get(BEST) == "true",
            "metrics": dict(r.data.metrics),
            "hyperparameters": json.loads(r.data.tags.get(HYPERPARAMS, "{}")),
            "seed": int(r.data.tags.get(SEED, 0)),
        })
    return rows


def read_run_config(uri: str | None, run_id: str) -> str:
    """The experiment YAML a run (or its parent sweep) was started from."""
    client = _client(resolve_uri(uri))
    run = client.get_run(run_id)
    source = run.data.tags.get(PARENT, run_id)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(source, "config.yaml", tmp)
        except Exception as err:
            raise TrackingError(f"run {source} has no config.yaml artifact: {str(err).splitlines()[0][:200]}") from None
        return Path(path).read_text()


def table_csv(rows: Iterable[Mapping[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


def log_audit(uri: str | None, experiment: str, entries: Iterable[Mapping[str, Any]], *, parent_id: str | None,
              table_text: str, table_rows: list[Mapping[str, Any]], columns: list[str]) -> None:
    """An audit's results: on each audited run its metrics and files (under `audit/`), on the parent
    sweep run the ranked audit table (text and CSV)."""
    tracker = Tracker(uri, experiment, create=False)
    for entry in entries:
        tracker.log(entry["run_id"], metrics=entry["metrics"])
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in entry.get("files", {}).items():
                (Path(tmp) / name).write_bytes(data)
            if entry.get("files"):
                tracker.client.log_artifacts(entry["run_id"], tmp, "audit")
    if parent_id:
        tracker.log_text(parent_id, table_text, "audit/audit_table.txt")
        tracker.log_text(parent_id, table_csv(table_rows, columns), "audit/audit_table.csv")
        tracker.share_sweep_view(parent_id, metrics=AUDIT_VIEW)


AUDIT_VIEW = ("audit_quality_ratio", "audit_auc", "audit_score")  # what the sweep's runs-table view adds after an audit


def audit_links(uri: str | None, experiment: str, parent_id: str, run_ids: Iterable[str]) -> tuple[str, str]:
    """(the sweep's runs-table view, the compare page of the audited runs)."""
    tracker = Tracker(uri, experiment, create=False)
    base = ui_base(tracker.uri)
    return tracker.runs_url(base, parent_id), tracker.compare_url(base, run_ids)
