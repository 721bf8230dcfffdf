"""The MLflow store: where it is, whether it answers, and `Tracker`, one experiment's runs written in batches.

The only package that imports mlflow (inside functions: importing it costs seconds).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import quote

from ..errors import TrackingError
from .vocabulary import PARENT, SHARED_VIEW, view_key

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


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def metrics_batch(metrics: Mapping[str, Any], step: int) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(key, float(value), now, step)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
    ]


def params_batch(params: Mapping[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(str(k), str(v)[:6000]) for k, v in params.items()]


def tags_batch(tags: Mapping[str, Any]) -> list:
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
            self._client = client_for(self.uri)
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
            metrics=metrics_batch(metrics or {}, step),
            params=params_batch(params or {}),
            tags=tags_batch(tags or {}),
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


def ui_base(uri: str) -> str:
    """The web address a store's links point at: the tracking server itself, else `ray-unlearn ui`'s."""
    return uri if uri.startswith("http") else LOCAL_UI
