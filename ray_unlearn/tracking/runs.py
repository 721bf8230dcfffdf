"""Standalone runs and the readers of `best`, `audit` and `--export`."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import TrackingError
from .store import Tracker, client_for, resolve_uri, ui_base
from .vocabulary import AUDIT_VIEW, BEST, HYPERPARAMS, KIND, METHOD, PARENT, SEED, STATUS


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
    client = client_for(resolve_uri(uri))
    run = client.get_run(run_id)
    source = run.data.tags.get(PARENT, run_id)
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


def audit_links(uri: str | None, experiment: str, parent_id: str, run_ids: Iterable[str]) -> tuple[str, str]:
    """(the sweep's runs-table view, the compare page of the audited runs)."""
    tracker = Tracker(uri, experiment, create=False)
    base = ui_base(tracker.uri)
    return tracker.runs_url(base, parent_id), tracker.compare_url(base, run_ids)
