"""What each `ray-unlearn` subcommand does, in the order it does it.

Validation comes first (a bad file trains nothing and creates no MLflow
run), then the tracking store is reached (so an unreachable server fails
before any training), then references are prepared, then the work runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from .config import Experiment, dump_yaml, load_experiment, parse_experiment, parse_yaml_text
from .errors import ConfigError, TrackingError
from .progress import EpochBar, table

logger = logging.getLogger(__name__)



def ref_columns(exp: Experiment) -> list[str]:
    from .tasks import get_task

    return ["model", *get_task(exp.task).reference_columns]


def load(args: argparse.Namespace) -> Experiment:
    overrides = list(args.overrides)
    if getattr(args, "data_dir", None):
        overrides.append(f"data.root={args.data_dir}")
    if getattr(args, "recheck", None) is not None:
        overrides.append(f"tune.recheck.top={args.recheck}")
    return load_experiment(args.config, overrides)


def _store(args: argparse.Namespace):
    """--cache-dir, else $RAY_UNLEARN_CACHE, else `<--storage>/cache` for a storage path, else ~/.cache/ray_unlearn.

    A sweep given a shared storage path (NFS) keeps its references beside its results, where
    every node and every later sweep reads the same ones; an s3:// storage cannot hold the cache.
    """
    from .cache import Store, default_cache_dir

    storage = getattr(args, "storage", None)
    if args.cache_dir:
        return Store(args.cache_dir)
    if storage and "://" not in storage and "RAY_UNLEARN_CACHE" not in os.environ:
        return Store(Path(storage).expanduser().resolve() / "cache")
    return Store(default_cache_dir())


def _device(args: argparse.Namespace):
    """--device (checked against what this machine has) and --threads; ConfigError rather than a traceback."""
    import torch

    from .device import pick_device

    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads", f"must be >= 1, got {args.threads}", value=args.threads)
    try:
        device = pick_device(args.device)
    except RuntimeError as err:
        raise ConfigError("--device", f"{args.device!r} is not a torch device ({str(err).splitlines()[0][:120]}); "
                                      "e.g. cpu, cuda, cuda:1", value=args.device) from None
    if device.type == "cuda":
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.index is not None and device.index >= found or not found:
            have = f"{found} CUDA device(s)" if found else f"no CUDA device (torch {torch.__version__}, " \
                                                            f"built {'with CUDA ' + torch.version.cuda if torch.version.cuda else 'for CPU only'})"
            raise ConfigError("--device", f"{args.device} asked for, but this machine has {have}; use --device cpu",
                              value=args.device)
    elif device.type not in ("cpu", "mps"):
        raise ConfigError("--device", f"{args.device!r}: use cpu or cuda[:N]", value=args.device)
    if device.type == "cpu":
        # the small nets here run faster on one thread, and two threads on a busy machine can be 100x slower
        torch.set_num_threads(args.threads or 1)
    return device


def _tracking_uri(args: argparse.Namespace, exp: Experiment | None = None) -> str:
    from .tracking import resolve_uri

    return resolve_uri(args.tracking_uri or (exp.tracking.uri if exp else None))


def _prepare(exp: Experiment, args: argparse.Namespace, splits: Any = None):
    import time

    from .references import prepare

    store = _store(args)
    started = time.perf_counter()
    refs, trained = prepare(exp, store, _device(args), progress=EpochBar(), splits=splits)
    verb = "trained" if trained else "loaded from cache"
    print(f"references {refs.key} {verb} ({store.entry(refs.key)})", file=sys.stderr)
    if exp.objective.population:
        made = next((t for t in trained if t.startswith("population")), "")
        print(f"per-example reference: {exp.objective.population} retrained models (one retrain each; "
              f"{made + f', with the references {time.perf_counter() - started:.0f} s' if made else 'all from the cache'})",
              file=sys.stderr)
    return refs, trained, store


def _reference_rows(refs) -> list[dict[str, Any]]:
    return [{"model": "original", **refs.original_metrics}, {"model": "retrain", **refs.retrain_metrics}]


def cmd_prepare(args: argparse.Namespace) -> int:
    exp = load(args)
    _device(args)  # a bad --device or --threads, before anything is created
    refs, trained, _ = _prepare(exp, args)
    splits = refs.splits
    print(f"{exp.data.dataset}: train {len(splits.train)} (forget {len(splits.forget_idx)}, retain {len(splits.retain_idx)}), "
          f"val {len(splits.val)}, test {len(splits.test)}")
    print(table(_reference_rows(refs), ref_columns(exp)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    exp = load(args)  # before anything imports torch: a bad file is answered at once
    from .cache import Store
    from .tasks import get_task
    from .trial import run_repeats

    start = exp.start_point()  # a multi-method file is refused here: `run` takes one method
    hp = exp.method_params(start)
    device = _device(args)  # a bad --device or --threads, before anything is created
    unset = sorted(set(exp.search) - set(start))
    if unset:
        print(f"note: `run` uses fixed: values, search: start: values and method defaults; "
              f"{', '.join(unset)} take their defaults", file=sys.stderr)
    uri = None if args.no_track else _tracking_uri(args, exp)
    _store(args).check_writable()  # before anything is created in MLflow
    from .data import load_splits

    splits = load_splits(exp.data)  # a dataset or forget request that cannot be honoured, too
    if uri:
        from .tracking import Tracker

        Tracker(uri, exp.experiment)  # reach the store before any training
    refs, _, store = _prepare(exp, args, splits)
    bar = EpochBar()
    epochs = getattr(hp, "epochs", 0)

    def report(metrics: dict) -> None:
        shown = {k: metrics[k] for k in ("score", *get_task(exp.task).trial_columns) if k in metrics}
        bar(exp.method, int(metrics["epoch"]), max(epochs, int(metrics["epoch"])), shown)

    result = run_repeats(exp, refs, start, device=device, report=report, memo=Store(store.root).memo(refs.key))
    rows = _reference_rows(refs) + [{"model": exp.method, **result.metrics}]
    print(table(rows, ref_columns(exp) + ["mia_gap", "avg_gap", "score"]))
    print(f"status: {result.status}" + (f" ({result.message})" if result.message else ""))
    if uri:
        from .tracking import STATUS, log_single_run, method_tags

        run_id, uri = log_single_run(
            uri, exp.experiment, f"{exp.method}-run",
            params=result.hyperparameters,
            metrics=result.metrics,
            tags={**method_tags(method=exp.method, dataset=exp.data.dataset, seed=exp.tune.seed,
                                hyperparameters=result.hyperparameters), STATUS: result.status},
            files={"config.yaml": dump_yaml(exp.to_dict())},
        )
        print(f"MLflow run {run_id} in experiment {exp.experiment!r} ({uri})")
    return 0 if result.status == "ok" else 1


def _storage(args: argparse.Namespace) -> str:
    if args.storage and "://" in args.storage:
        return args.storage
    return str(Path(args.storage or "ray_results").expanduser().resolve())


def cmd_tune(args: argparse.Namespace) -> int:
    exp = load(args)  # before anything imports torch: a bad file is answered at once
    from . import interrupt
    from .objective import describe
    from .workflow import Sweep, interrupted_header

    if args.num_samples is not None and args.num_samples < 1:
        raise ConfigError("--num-samples", f"must be >= 1, got {args.num_samples}")
    if args.connect_timeout is not None and args.connect_timeout <= 0:
        raise ConfigError("--connect-timeout", f"must be > 0 seconds, got {args.connect_timeout:g}", value=args.connect_timeout)
    sweep = Sweep(exp, tracking_uri=_tracking_uri(args, exp), storage=_storage(args), store=_store(args), device=_device(args),
                  name=args.name, resume=args.resume, num_samples=args.num_samples)  # validated and locked before any training
    resume_hint = f"continue it with: ray-unlearn tune {args.config} --resume --name {sweep.name}"
    try:
        refs = sweep.prepare(progress=EpochBar(), address=args.address)
        print(table(_reference_rows(refs), ref_columns(exp)))
        verb = "resuming" if args.resume else "starting"
        print(f"{verb} sweep {sweep.name}: {sweep.total} trials of {exp.method.replace('|', ', ')}, {describe(exp.objective)}",
              file=sys.stderr)
        outcome = sweep.run(address=args.address, connect_timeout=args.connect_timeout)
        with interrupt.graceful():  # a signal now: the sweep is recorded first
            summary = sweep.finish(outcome)
    except interrupt.Interrupted:
        if sweep.started:
            print(f"sweep interrupted; {resume_hint}", file=sys.stderr)
        raise
    finally:
        sweep._unlock()
    tracker = sweep.tracker
    if outcome.interrupted:
        print(f"\n{interrupted_header(outcome)} of {exp.experiment} (finished trials only):")
        print(table(summary.rows[:10], summary.columns))
        print(f"\nMLflow: sweep run {tracker.parent_id} in {tracker.uri} ended KILLED (status interrupted)")
        print(f"sweep interrupted; {resume_hint}", file=sys.stderr)
        return interrupt.exit_code()
    if summary.front:
        goals = ", ".join(f"{m} {d}" for m, d in summary.goals)
        print(f"\nPareto front ({goals}): {len(summary.front)} of {len(summary.rows)} trials")
        print(table(summary.front, summary.front_columns))
    retained = exp.objective.retained
    robust = (f"; ranked by recheck_score_mean, the mean score over seeds "
              f"{', '.join(map(str, (exp.data.seed, *exp.tune.recheck.seeds)))}" if outcome.rechecked else "")
    print(f"\nbest trials of {exp.experiment} ({describe(exp.objective)}; retrain {retained} "
          f"{refs.retrain_metrics[retained]:.2f}, mia {refs.retrain_metrics['mia']:.2f}{robust}):")
    print(table(summary.rows[:10], summary.columns))
    if summary.per_method:
        print("\nbest trial per method:")
        print(table(summary.per_method, summary.columns))
    if outcome.errors:
        print(f"{outcome.errors} trial(s) failed; see their MLflow runs (status FAILED)", file=sys.stderr)
    if outcome.rechecked:
        print(f"re-check: {len(outcome.rechecked)} configurations on seeds "
              f"{', '.join(map(str, exp.tune.recheck.seeds))} in {outcome.recheck_seconds:.0f} s", file=sys.stderr)
    print(f"\nMLflow: experiment {exp.experiment!r} in {tracker.uri}, sweep run {tracker.parent_id}")
    if not tracker.uri.startswith("http"):
        print(f"look at it:  ray-unlearn ui --tracking-uri {tracker.uri}   then open")
    print(f"runs table:  {summary.link}")
    if summary.compare_link:
        print(f"compare the best side by side: {summary.compare_link}")
    print(f"export best: ray-unlearn best {exp.experiment} --tracking-uri {tracker.uri} --export best.yaml")
    if interrupt.requested():  # the signal came while the finished sweep was being recorded
        return interrupt.exit_code()
    if args.audit:
        from .audit_command import audit_sweep, audited_runs

        runs = audited_runs(tracker.uri, exp.experiment, args.audit)
        return audit_sweep(exp, refs, runs, uri=tracker.uri, models=args.audit_models, cache_root=str(sweep.store.root),
                           address=args.address, device=_device(args))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit_command import audit_sweep, audited_runs, experiment_of, parse_seeds, warn_seen_seeds
    from .references import prepare

    experiment, uri = args.experiment, args.tracking_uri
    if experiment.endswith((".yaml", ".yml")) or Path(experiment).is_file():
        named = load_experiment(experiment)
        experiment, uri = named.experiment, uri or named.tracking.uri
    if args.top < 1:
        raise ConfigError("--top", f"must be >= 1, got {args.top}", value=args.top)
    if args.models < 4:
        raise ConfigError("--models", f"an audit needs at least 4 models per population, got {args.models}", value=args.models)
    from .tracking import resolve_uri

    uri = resolve_uri(uri)
    seeds = parse_seeds(args.forget_seeds)
    runs = audited_runs(uri, experiment, args.top)
    exp = experiment_of(uri, runs[0])
    warn_seen_seeds(exp, seeds)
    device = _device(args)
    store = _store(args)
    refs, trained = prepare(exp, store, device, progress=EpochBar())
    if trained:
        print(f"trained references {', '.join(trained)}", file=sys.stderr)
    return audit_sweep(exp, refs, runs, uri=uri, models=args.models, cache_root=str(store.root), address=args.address,
                       device=device, forget_seeds=seeds)


def best_shown() -> tuple[str, ...]:
    """What `best` shows (of the metrics a run has): every task's selection figures, the gaps, every task's test figures."""
    from .tasks import all_tasks

    tasks = all_tasks()
    return (*(c for t in tasks for c in t.best_columns[0]), "mia_gap", "avg_gap", *(c for t in tasks for c in t.best_columns[1]))


def cmd_best(args: argparse.Namespace) -> int:
    from .tracking import ranked_runs, read_run_config

    experiment, uri = args.experiment, args.tracking_uri
    if experiment.endswith((".yaml", ".yml")) or Path(experiment).is_file():
        exp = load_experiment(experiment)
        experiment, uri = exp.experiment, uri or exp.tracking.uri
    from .config import METRIC_DIRECTIONS
    from .tracking import ROBUST_SCORE

    metric = args.metric
    rows = []
    if metric is None:  # the robust score where the sweep re-checked its best, else the one-seed score
        rows = ranked_runs(uri, experiment, top=args.top, metric=ROBUST_SCORE, method=args.method)
        metric = ROBUST_SCORE if rows else "score"
        if rows:
            print(f"ranked by {ROBUST_SCORE} (re-checked trials: the mean score over the sweep's seed and its re-check "
                  "seeds); --metric score ranks every trial by its one-seed score", file=sys.stderr)
    ascending = METRIC_DIRECTIONS.get(metric, "max") == "min"
    shown_metrics = best_shown()
    if not rows:
        rows = ranked_runs(uri, experiment, top=args.top, metric=metric, ascending=ascending, method=args.method)
    if not rows:
        raise TrackingError(f"no finished runs with metric {metric!r} in experiment {experiment!r}")
    hp_names = sorted({k for r in rows for k in r["hyperparameters"]})
    figures = ("score", ROBUST_SCORE, *shown_metrics, metric)
    shown = [{"rank": i + 1, "run_name": r["run_name"], "method": r["method"], "status": r["status"],
              **{k: r["metrics"][k] for k in figures if k in r["metrics"]}} for i, r in enumerate(rows)]
    columns = ["rank", "run_name", "method", "status", *dict.fromkeys(k for k in figures if any(k in r for r in shown))]
    if metric not in columns:
        columns.append(metric)
    print(table(shown, columns))
    best = rows[0]
    print(f"\nbest: {best['run_name']} ({best['run_id']}): " + ", ".join(f"{k}={best['hyperparameters'][k]}" for k in hp_names))
    if args.export:
        raw = parse_yaml_text(read_run_config(uri, best["run_id"]), f"run {best['run_id']} config.yaml")
        raw["method"] = best["method"]  # a multi-method sweep exports its winner's method
        raw["fixed"] = dict(best["hyperparameters"])
        raw["search"] = {}
        raw.setdefault("tune", {})["seed"] = best["seed"]
        exp = parse_experiment(raw, source=f"export of run {best['run_id']}")  # must be runnable
        header = (f"# exported by `ray-unlearn best` from MLflow run {best['run_id']} ({best['run_name']}),\n"
                  f"# {metric} = {best['metrics'].get(metric)}; run it with: ray-unlearn run {args.export}\n")
        Path(args.export).write_text(header + dump_yaml(exp.to_dict()))
        print(f"wrote {args.export}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .hparams import describe
    from .registry import CATALOG as METHODS

    if args.name:
        if args.name not in METHODS:
            from .schema import unknown_name

            raise unknown_name("method", args.name, list(METHODS), "method")
        cls = METHODS[args.name]
        print(f"{cls.name}: {cls.summary}")
        print(f"paper: {cls.paper}")
        print(f"reads the retain set: {'yes' if cls.uses_retain else 'no'}\n")
        rows = [{"hyperparameter": p.name, "type": p.type.__name__, "default": p.default, "valid": p.valid,
                 "search range": p.search.describe() if p.search else "-", "help": p.help} for p in describe(cls.Params)]
        print(table(rows, ["hyperparameter", "type", "default", "valid", "search range", "help"]))
        return 0
    rows = []
    for name, cls in METHODS.items():
        params = describe(cls.Params)
        searched = ", ".join(f"{p.name} {p.search.describe()} (default {p.default})" for p in params if p.search)
        rows.append({"method": name, "summary": cls.summary, "searchable": searched})
    for row in rows:
        print(f"{row['method']}\n  {row['summary']}\n  search: {row['searchable']}\n")
    from .plugins import broken

    for plugin, problem in broken().items():  # reported, and skipped: the others still work
        print(f"plugin not loaded: {plugin}: {problem}")
    print("details: ray-unlearn methods NAME")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from .ui_command import serve

    return serve(args)
