"""A sweep from start to finish, as one object the CLI and notebooks drive.

    sweep = Sweep(exp, tracking_uri=..., storage=..., store=Store(dir))  # validates, reaches MLflow
    refs = sweep.prepare()            # references from the cache (trained once)
    outcome = sweep.run()             # Ray Tune + Optuna; MLflow child runs as trials go
    summary = sweep.finish(outcome)   # ranked table, Pareto front, plots, best tagged

Order matters: the configuration and search space are checked and the
tracking store is reached before anything is trained, so a mistake costs
nothing and leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

from .cache import Store
from .config import Experiment, dump_yaml
from .errors import ConfigError
from .progress import markdown_table
from .recheck import SeedResult
from .tasks import get_task
from .tracking.vocabulary import ROBUST_SCORE, ROBUST_STD

COMPARED = 5  # trials on the compare page the sweep links to


@dataclasses.dataclass
class Summary:
    rows: list[dict[str, Any]]  # every trial, best first, hyperparameters flattened in
    columns: list[str]
    goals: list[tuple[str, str]]
    front: list[dict[str, Any]]  # Pareto front (multi-objective sweeps)
    front_columns: list[str]
    link: str  # the runs table of this sweep, sorted by score, best first
    per_method: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # multi-method: each method's best trial
    compare_link: str = ""  # MLflow's compare page of the best trials (parameters, metrics, parallel coordinates)


def best_per_method(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each method's best finished trial, in the order of `rows` (best first): a multi-method study
    answers "which method" and "how good is each one tuned" in one sweep."""
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("status") == "ok":
            seen.setdefault(r["method"], r)
    return list(seen.values())


def interrupted_header(outcome: Any) -> str:
    import signal

    return (f"INTERRUPTED ({signal.Signals(outcome.interrupted).name}) after {len(outcome.rows)} of {outcome.total} trials"
            if outcome.interrupted else "")


def slug(exp: Experiment) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", exp.experiment).strip("-") or "sweep"


def check_storage(storage: str) -> None:
    """A local Ray Tune storage path must be a writable directory (URIs are the cluster's business)."""
    if "://" in storage:
        return
    path = Path(storage)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError("--storage", f"{storage} is not a writable directory: {err.strerror or err}") from None


class Sweep:
    """One sweep's life: validated and locked at construction, then prepare, run (and re-check), finish.

    `total` is the trial count: `num_samples`, else the YAML's; a resumed sweep keeps the count it was
    started with, and `num_samples` above it extends the sweep (below it is an error).
    """

    def __init__(self, exp: Experiment, *, tracking_uri: str | None, storage: str, store: Store, device: Any = None,
                 name: str | None = None, resume: bool = False, num_samples: int | None = None):
        from .search import build_searcher
        from .tracking import SweepTracker

        self.exp, self.storage, self.store, self.resume = exp, storage, store, resume
        self.device = device
        build_searcher(exp)  # search-space errors before anything is trained
        check_storage(storage)  # unwritable places before anything is created in MLflow
        store.check_writable()
        from .data import load_splits

        self.splits = load_splits(exp.data)  # and a dataset or forget request that cannot be honoured
        self.tracker = SweepTracker(tracking_uri, exp.experiment)
        self.total = num_samples or exp.tune.num_samples
        self.lock: Any = None
        if resume:
            name = name or self.tracker.latest_sweep_name()
            if not name:
                raise ConfigError("--resume", f"no sweep of {exp.experiment!r} to resume in {self.tracker.uri}; "
                                              "start one without --resume")
            if not self.tracker.sweep_exists(name):
                raise ConfigError("--name", f"no sweep {name!r} of {exp.experiment!r} in {self.tracker.uri} to resume", value=name)
            self.name = name
            self._lock()
            self.tracker.resume_sweep(name)
            started_with = self.tracker.num_samples() or exp.tune.num_samples
            if num_samples is not None and num_samples < started_with:
                self._unlock()
                raise ConfigError("--num-samples", f"sweep {name} has {started_with} trials; --num-samples can extend it "
                                                   f"(a larger count), not shrink it", value=num_samples)
            self.total = max(started_with, num_samples or 0)
            if self.total != started_with:
                self.tracker.set_num_samples(self.total)
        else:
            if name and self.tracker.sweep_exists(name):
                raise ConfigError("--name", f"a sweep named {name!r} exists in {exp.experiment!r} already: continue it with "
                                            "--resume, or choose another name", value=name)
            self.name = name or f"{slug(exp)}-{time.strftime('%Y%m%d-%H%M%S')}"
            self._lock()
        self.refs = None

    def _lock(self) -> None:
        """One driver per sweep (driver_lock.py): a file lock where the storage is a path; a URI's lease is
        taken once the parent run exists (`_lease`)."""
        from .driver_lock import FileLock

        if "://" not in self.storage:
            self.lock = FileLock(self.storage, self.name)
            self.lock.acquire()

    def _lease(self) -> None:
        from .driver_lock import Lease

        if "://" in self.storage and self.lock is None:
            self.lock = Lease(self.tracker, self.name)
            self.lock.acquire()

    def _unlock(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def prepare(self, progress: Any = None, address: str | None = None):
        """The references, from the cache or trained; a per-example reference's population
        (objective.population) is trained as Ray tasks."""
        from .device import pick_device
        from .references import prepare

        runner = None
        if self.exp.objective.population:
            from .search import population_runner

            runner = population_runner(address)
        self.refs, _ = prepare(self.exp, self.store, self.device or pick_device(), progress=progress, splits=self.splits,
                               runner=runner)
        return self.refs

    @property
    def started(self) -> bool:
        """Whether the sweep exists in MLflow (a parent run): only then can it be resumed."""
        return self.tracker.parent_id is not None

    def run(self, *, address: str | None = None, num_samples: int | None = None, callbacks: Sequence[Any] = (),
            connect_timeout: float | None = None):
        """The trials, then (unless a stop signal ended them) the re-check rung."""
        from . import interrupt
        from .search import ensure_ray, run_sweep

        refs = self.refs or self.prepare()
        ensure_ray(address, connect_timeout=connect_timeout)
        if num_samples is not None and not self.resume:
            self.total = num_samples
        if not self.resume:
            self._start_parent(refs)
        try:
            self._lease()
            outcome = run_sweep(self.exp, refs, tracker=self.tracker, storage_path=self.storage, name=self.name,
                                cache_root=str(self.store.root), total=self.total, resume=self.resume, callbacks=callbacks)
            if self.exp.tune.recheck.top and not outcome.interrupted:
                with interrupt.graceful():
                    self.recheck(outcome)
                outcome.interrupted = interrupt.signum()
            return outcome
        except BaseException:
            if self.started:
                self.tracker.end_run(self.tracker.parent_id, "KILLED")
            self._unlock()
            raise

    def recheck(self, outcome, runner: Any = None) -> None:
        """The re-check rung: the sweep's `tune.recheck.top` best re-run on `tune.recheck.seeds` (Ray tasks
        unless `runner` says otherwise); each result is recorded in MLflow as it arrives, so a resumed
        sweep runs none twice. Re-orders `outcome.rows` by the robust score."""
        import sys

        from . import interrupt
        from .recheck import candidates, rank_rows, recheck, seed_table
        from .search import recheck_runner
        from .tracking import table_csv

        exp = self.exp
        started = time.perf_counter()
        chosen = candidates(exp, outcome.rows, exp.tune.recheck.top)
        done = {key: SeedResult(**value) for key, value in self.tracker.recheck_results(c.trial_id for c in chosen).items()}
        todo = len(chosen) * len(exp.tune.recheck.seeds) - len(done)
        names = {c.trial_id: c.run_name for c in chosen}
        print(f"re-check: {len(chosen)} best of the sweep on seeds {', '.join(map(str, exp.tune.recheck.seeds))}"
              f" ({todo} runs{f', {len(done)} recorded earlier' if done else ''})", file=sys.stderr, flush=True)
        count = [0]

        task = get_task(exp.task)
        logged = ("score", *task.rank_columns, *task.spread_metrics)

        def record(job, result) -> None:
            count[0] += 1
            metrics = {k: v for k, v in result.metrics.items() if k in logged}
            self.tracker.log_recheck_seed(job.trial_id, job.seed, status=result.status, metrics=metrics, message=result.message)
            shown = f"score {result.score:.2f}" if result.status == "ok" else result.message[:120]
            print(f"[re-check {count[0]}/{todo}] {names[job.trial_id]} seed {job.seed} {result.status:<9} {shown}",
                  file=sys.stderr, flush=True)

        ranked = recheck(exp, chosen, runner=runner or recheck_runner(str(self.store.root)), done=done, on_result=record)
        if interrupt.requested():
            return  # an incomplete re-check ranks nothing; --resume completes it
        columns = ["score", *task.rank_columns]
        for c in ranked:
            mean, std = c.robust()
            self.tracker.log_recheck(c.trial_id, mean=mean, std=std,
                                     table=table_csv(seed_table(c, columns), ["seed", "role", "status", *columns, "message"]))
        outcome.rows = rank_rows(outcome.rows, ranked)
        outcome.rechecked = ranked
        outcome.recheck_seconds = time.perf_counter() - started

    def _start_parent(self, refs) -> None:
        """The parent run: config, resolved search space, reference metrics."""
        from .objective import describe
        from .tracking import DATASET, METHOD, NUM_SAMPLES, REFERENCES, STATUS

        exp = self.exp
        spec = exp.to_dict()
        fixed = {f"fixed.{m.name}.{k}" if exp.multi else f"fixed.{k}": v for m in exp.methods for k, v in m.fixed.items()}
        self.tracker.start_sweep(
            self.name,
            tags={METHOD: exp.method, DATASET: exp.data.dataset, REFERENCES: refs.key, NUM_SAMPLES: self.total,
                  STATUS: "running"},
            params={"method": exp.method, "dataset": exp.data.dataset, "arch": exp.model.arch,
                    "forget": json.dumps(dataclasses.asdict(exp.data.forget)), "objective": describe(exp.objective), **fixed},
            metrics={**{f"retrain_{k}": v for k, v in refs.retrain_metrics.items()},
                     **{f"original_{k}": v for k, v in refs.original_metrics.items()}},
            files={"config.yaml": dump_yaml(spec), "search_space.json": json.dumps(spec["search"], indent=1)},
        )

    def finish(self, outcome) -> Summary:
        """Ranked table, Pareto front, plots and the parent run's description; the best child tagged."""
        from .objective import pareto_front, targets
        from .plots import history_plot, importance_plot, pareto_plot
        from .tracking import table_csv

        exp = self.exp
        hp_names = sorted({k for m in exp.methods for k in m.search})
        robust = [ROBUST_SCORE, ROBUST_STD] if outcome.rechecked else []
        ranked = ["rank", "run_name", "status", "score", *robust, *get_task(exp.task).rank_columns]
        columns = ranked[:2] + (["method"] if exp.multi else []) + ranked[2:] + hp_names
        rows = [{"rank": i + 1, **r, **{k: r["hyperparameters"].get(k, "") for k in hp_names}} for i, r in enumerate(outcome.rows)]
        files = {"trials.csv": table_csv(rows, columns)}
        goals = targets(exp.objective)
        front: list[dict[str, Any]] = []
        front_columns = ["run_name", *(m for m, _ in goals), *hp_names]
        if len(goals) > 1:
            front = pareto_front([r for r in rows if r["status"] == "ok"], goals)
            front.sort(key=lambda r: r[goals[0][0]], reverse=goals[0][1] == "max")
            files["pareto_front.csv"] = table_csv(front, front_columns)
        with tempfile.TemporaryDirectory() as tmp:
            images = [history_plot(rows, Path(tmp) / "optimisation_history.png")]
            if not exp.multi:
                images.append(importance_plot(rows, exp.search, Path(tmp) / "param_importances.png"))
            if front:
                images.append(pareto_plot(rows, front, goals, Path(tmp) / "pareto_front.png"))
            per_method = best_per_method(rows) if exp.multi else []
            note = self._note(rows[:10], columns, front, per_method)
            if outcome.interrupted:
                note = f"**{interrupted_header(outcome)}**\n\n" + note
            self.tracker.finish(rows, note=note, files=files, images=[i for i in images if i is not None],
                                interrupted=bool(outcome.interrupted))
        from .tracking import BEST, STATUS, ui_base

        order_by = ROBUST_SCORE if outcome.rechecked else "score"
        view = [c for c in columns if c in ("score", *robust, *get_task(exp.task).rank_columns)]
        self.tracker.writer.call(self.tracker.share_sweep_view, self.tracker.parent_id, metrics=view, params=hp_names,
                                 tags=[BEST, STATUS], order_by=order_by)
        base = ui_base(self.tracker.uri)
        top = [self.tracker.children[r["trial_id"]] for r in rows if r["status"] == "ok" and r["trial_id"] in self.tracker.children]
        self._unlock()
        return Summary(rows, columns, goals, front, front_columns, self.tracker.runs_url(base, self.tracker.parent_id), per_method,
                       self.tracker.compare_url(base, top[:COMPARED]) if len(top) > 1 else "")

    def _note(self, top: list[dict[str, Any]], columns: list[str], front: list[dict[str, Any]],
              per_method: list[dict[str, Any]] = ()) -> str:
        exp = self.exp
        lines = [f"## {exp.experiment}: {exp.method.replace('|', ', ')} on {exp.data.dataset}", ""]
        if top:
            best = top[0]
            winning = ", ".join(f"`{k}={v}`" for k, v in sorted(best["hyperparameters"].items()))
            lines += [f"**Best trial:** {best['run_name']} ({best['method']}) with score {best['score']:.3f}"
                      + (f", robust score {best[ROBUST_SCORE]:.3f} (mean over seeds "
                         f"{', '.join(map(str, (exp.data.seed, *exp.tune.recheck.seeds)))})" if ROBUST_SCORE in best else "")
                      + f": {winning}", ""]
        lines.append(markdown_table(top, columns))
        if per_method:
            lines += ["", "**Best trial per method:**", "", markdown_table(list(per_method), columns)]
        if front:
            lines += ["", f"**Pareto front** ({len(front)} trials): " + ", ".join(r["run_name"] for r in front)]
        return "\n".join(lines)
