"""`SweepTracker`: a sweep's parent run and one child run per trial, idempotent per trial id.

Threading rule: the public methods run on the driver's thread. Those that only record an event
(`start_trial`, `log_epoch`, `log_files`, `end_trial`, `log_recheck*`) enqueue a `_`-prefixed method
on the BackgroundWriter and return at once; those that must see the store as it is (`finish`,
`drop_duplicates`, `set_num_samples`, `trial_records`, `recheck_results`) first wait for the queue.
The `_`-prefixed methods run on the writer thread only, and they alone touch the per-trial buffers
(`children`, `pending`, `steps`, `flushed`). Pickling (Ray Tune saves its callbacks) drops the client and
the thread; unpickling makes no network call.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import uuid
from typing import Any, Iterable, Mapping

import ray_unlearn.tracking.vocabulary as vocab  # a module, not the package: no import circle

from ..errors import TrackingError
from .records import by_trial, number, pick, recheck_seeds
from .store import Tracker, git_commit, metrics_batch, tags_batch
from .writer import BackgroundWriter

logger = logging.getLogger(__name__)


class SweepTracker(Tracker):
    """Parent run per sweep, child run per trial; idempotent per trial id (resume never duplicates).
    The module docstring gives the threading rule."""

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
        all_tags = {vocab.KIND: "sweep", vocab.SWEEP: name, **tags}
        if commit:
            all_tags[vocab.GIT_COMMIT] = commit
        all_tags[vocab.CREATED_BY] = uuid.uuid4().hex
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
        mine = f"tags.`{vocab.CREATED_BY}` = '{tags[vocab.CREATED_BY]}'"
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
            [self.experiment_id], filter_string=f"tags.{vocab.KIND} = 'sweep' and tags.`{vocab.SWEEP}` = '{name}'", max_results=1
        )
        if not runs:
            raise TrackingError(f"no MLflow parent run for sweep {name!r} in experiment {self.experiment_name!r} ({self.uri})")
        self.parent_id = runs[0].info.run_id
        self.client.update_run(self.parent_id, status="RUNNING")
        self.client.set_tag(self.parent_id, vocab.STATUS, "running")
        self.children = self._existing_children()
        return self.parent_id

    def parent_tag(self, key: str) -> str | None:
        return self.client.get_run(self.parent_id).data.tags.get(key)

    def set_parent_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.parent_id, key, value)

    def sweep_exists(self, name: str) -> bool:
        return bool(self.client.search_runs([self.experiment_id], filter_string=f"tags.{vocab.KIND} = 'sweep' and tags.`{vocab.SWEEP}` = '{name}'",
                                            max_results=1))

    def latest_sweep_name(self) -> str | None:
        """The Ray Tune name of this experiment's newest sweep (what `--resume` continues without --name)."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.{vocab.KIND} = 'sweep'",
                                       order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].data.tags.get(vocab.SWEEP) if runs else None

    def num_samples(self) -> int | None:
        """The trial count the sweep was started (or last extended) with."""
        value = self.client.get_run(self.parent_id).data.tags.get(vocab.NUM_SAMPLES)
        return int(value) if value and value.isdigit() else None

    def set_num_samples(self, total: int) -> None:
        self.writer.call(self.client.set_tag, self.parent_id, vocab.NUM_SAMPLES, str(total))

    def trial_records(self) -> list[dict[str, Any]]:
        """Every child run of the sweep as the resumed sweep needs it: trial id, name, status, metrics, the
        trial config (or, for runs written before it was recorded, method and sampled values), and
        whether it finished (ended FINISHED or FAILED, not cut short by an interruption)."""
        self.drain()
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.{vocab.PARENT} = '{self.parent_id}'", max_results=50000)
        out = []
        for trial_id, group in by_trial(runs).items():
            run = pick(group)
            tags = run.data.tags
            status = tags.get(vocab.STATUS, "running")
            hp = json.loads(tags.get(vocab.HYPERPARAMS, "{}"))
            searched = [k for k in tags.get(vocab.SEARCHED, "").split(",") if k]
            out.append({
                "trial_id": trial_id, "run_name": run.info.run_name, "status": status, "metrics": dict(run.data.metrics),
                "config": json.loads(tags[vocab.TRIAL_CONFIG]) if vocab.TRIAL_CONFIG in tags else None,
                "method": tags.get(vocab.METHOD), "sampled": {k: hp[k] for k in searched if k in hp},
                "info": {k[len("ray_unlearn."):]: number(v) for k, v in tags.items() if k in vocab.INFO_TAGS},
                "finished": run.info.status in ("FINISHED", "FAILED") and status not in ("running", vocab.INTERRUPTED),
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
                self.end_trial(trial_id, metrics={}, status=vocab.INTERRUPTED, killed=True)
            else:
                self.end_trial(trial_id, metrics={}, status="stopped")
        self.drain()

    def next_ordinal(self) -> int:
        """1 + the highest `<method>-<n>` ordinal among this sweep's child runs (0 if none)."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.{vocab.PARENT} = '{self.parent_id}'", max_results=50000)
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
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.{vocab.PARENT} = '{self.parent_id}'", max_results=50000)
        for trial_id, group in by_trial(runs).items():
            keep = pick(group)
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
            [self.experiment_id], filter_string=f"tags.{vocab.PARENT} = '{self.parent_id}'", max_results=50000
        )
        return {trial_id: pick(group).info.run_id for trial_id, group in by_trial(runs).items()}

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
                self.log(run_id, tags={vocab.STATUS: "running"})
                return run_id
        elif run_id is None:  # a retried write: the server may have created the run before the error
            run_id = self._existing_children().get(trial_id)
        self.creating.add(trial_id)
        if run_id is None:
            run_id = self.start_run(name, {vocab.KIND: "trial", vocab.TRIAL_ID: trial_id, vocab.STATUS: "running", **tags}, parent_id=self.parent_id)
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
        pending.extend(metrics_batch(metrics, step))  # buffering cannot fail: a retry never doubles a point
        if time.monotonic() - self.flushed.get(trial_id, 0.0) > self.FLUSH_SECONDS or len(pending) > self.MAX_BATCH:
            self.writer._attempt(self._flush, (trial_id,), {})

    def _flush(self, trial_id: str) -> None:
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
        tags = {**(tags or {}), vocab.STATUS: status}
        if message:
            tags[vocab.MESSAGE] = message[:5000]
        # the buffered epochs, the final metrics and the tags in one write (two round trips per trial's end)
        pending = self.pending.setdefault(trial_id, [])
        pending.extend(metrics_batch(metrics, self.steps.get(trial_id, 0)))
        while len(pending) > self.MAX_BATCH:
            self.client.log_batch(run_id, metrics=pending[: self.MAX_BATCH])
            del pending[: self.MAX_BATCH]
        self.client.log_batch(run_id, metrics=pending, tags=tags_batch(tags))
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
                for seed, result in recheck_seeds(self.client.get_run(run_id)).items():
                    out[(trial_id, seed)] = result
        return out

    def log_recheck_seed(self, trial_id: str, seed: int, *, status: str, metrics: Mapping[str, Any], message: str) -> None:
        """One re-check run's result, recorded as it arrives (a resumed sweep does not run it again)."""
        tags = {f"{vocab.RECHECK_STATUS}{seed}": status, **({f"{vocab.RECHECK_MESSAGE}{seed}": message[:5000]} if message else {})}
        self.writer.submit(self._log_to_trial, trial_id, {vocab.recheck_metric(k, seed): v for k, v in metrics.items()}, tags)

    def log_recheck(self, trial_id: str, *, mean: float, std: float, table: str) -> None:
        """A candidate's robust score and its per-seed table (`recheck/seeds.csv`)."""
        self.writer.submit(self._log_to_trial, trial_id, {vocab.ROBUST_SCORE: mean, vocab.ROBUST_STD: std}, {}, table)

    def _log_to_trial(self, trial_id: str, metrics: Mapping[str, Any], tags: Mapping[str, Any], table: str | None = None) -> None:
        run_id = self.children.get(trial_id)
        if run_id is None:
            logger.warning("no MLflow run for trial %s: its re-check figures are not recorded", trial_id)
            return
        self.log(run_id, metrics=metrics, tags=tags)
        if table is not None:
            self.log_text(run_id, table, vocab.RECHECK_TABLE)

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
            [self.experiment_id], filter_string=f"tags.{vocab.PARENT} = '{self.parent_id}' and tags.{vocab.BEST} = 'true'"
        ):
            self.client.set_tag(run.info.run_id, vocab.BEST, "false")
        metrics: dict[str, Any] = {vocab.FINISHED_TRIALS: len(ranked)}
        if interrupted:
            self.log(self.parent_id, metrics=metrics, tags={vocab.NOTE: note, vocab.STATUS: vocab.INTERRUPTED})
            for path, text in files.items():
                self.log_text(self.parent_id, text, path)
            self.end_run(self.parent_id, "KILLED")
            return
        if ranked:
            best = ranked[0]
            best_run = self.children.get(best["trial_id"])
            if best_run:
                self.client.set_tag(best_run, vocab.BEST, "true")
            metrics.update({"score": best["score"], "best_score": best["score"], "trials": len(ranked)})
            if vocab.ROBUST_SCORE in best:
                metrics[vocab.ROBUST_SCORE] = best[vocab.ROBUST_SCORE]
        self.log(self.parent_id, metrics=metrics, tags={vocab.NOTE: note, vocab.STATUS: "finished"})
        for path, text in files.items():
            self.log_text(self.parent_id, text, path)
        for image in images or []:
            self.client.log_artifact(self.parent_id, str(image), "plots")
        self.end_run(self.parent_id, "FINISHED")
