"""Regenerate the `start:` values of search_spaces/ YAMLs: a multi-seed sweep per file, then the winner.

A start point is what `ray-unlearn run` uses and what a sweep tries first, and the quality tests
(tests/methods/test_quality.py) hold every method to it on any machine of this kind. So a start point
must not sit on a knife's edge: each candidate is run on several data/model seeds (`data.seed`,
`train.seed` and the method seed all = s), and it scores the *worst* seed's score, or the worst score
at all when any seed collapses, diverges or ends with val_acc closer than `--margin` points to the
collapse threshold (the original's val_acc - objective.max_val_drop). The current `start:` point is
tried first and the declared defaults (docs/methods.md) second, so a regenerated point is never worse than either
on this criterion.

    python bench/start_points.py search_spaces/mnist1d_amun_salun.yaml            # print the winner
    python bench/start_points.py search_spaces/mnist1d_*.yaml --trials 24 --write  # rewrite start: values
    python bench/start_points.py search_spaces/digits_salun.yaml --seeds 0,1,2,3 --margin 8
    python bench/start_points.py search_spaces/mnist1d_*.yaml --current   # the shipped points, per seed

Runs in-process (no Ray, no MLflow): an Optuna TPE study over the file's own `search:` block, its own
objective. References of every seed are trained once and cached (`RAY_UNLEARN_CACHE`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from ray_unlearn.cache import Store, default_cache_dir
from ray_unlearn.config import Experiment, load_experiment
from ray_unlearn.objective import WORST_SCORE
from ray_unlearn.progress import table
from ray_unlearn.references import prepare
from ray_unlearn.start_points import rounded, write_start
from ray_unlearn.tasks.classification.references import References
from ray_unlearn.tasks.guards import collapse_message
from ray_unlearn.trial import run_repeats


def seeded(path: Path, seed: int) -> list[str]:
    return [f"data.seed={seed}", f"train.seed={seed}", f"tune.seed={seed}"]


def robust_score(exp: Experiment, runs: list[tuple[References, dict]], margin: float, aggregate: str = "min") -> tuple[float, str]:
    """The worst seed's score (`aggregate="mean"`: the seeds' mean); WORST_SCORE when any seed failed
    or came within `margin` of collapsing (the trial's own collapse rule, `tasks.guards.collapse_message`,
    with objective.max_val_drop less `margin`)."""
    drop = exp.objective.max_val_drop
    stricter = exp if drop is None else exp.replace(objective=dataclasses.replace(exp.objective, max_val_drop=drop - margin))
    scores = []
    for refs, result in runs:
        if result["status"] != "ok":
            return WORST_SCORE, f"{result['status']}: {result['message']}"
        if why := collapse_message(stricter, result, refs.original_metrics):
            return WORST_SCORE, f"within {margin:g} of collapsing: {why}"
        scores.append(result["score"])
    return (statistics.fmean(scores) if aggregate == "mean" else min(scores)), ""


def evaluate_point(exp_by_seed: dict[int, tuple[Experiment, References]], point: dict[str, Any], store: Store) -> list[tuple[References, dict]]:
    runs = []
    for seed, (exp, refs) in exp_by_seed.items():
        # as a `ray-unlearn tune` trial does: tune.repeats runs (method seeds tune.seed = s, s + 1, ...), averaged
        result = run_repeats(exp, refs, point, device=torch.device("cpu"), memo=store.memo(refs.key))
        runs.append((refs, {**result.metrics, "status": result.status, "message": result.message}))
    return runs


def suggest(trial: optuna.Trial, exp: Experiment) -> dict[str, Any]:
    """A candidate as it will be written: floats rounded to the 3 significant digits `write_start`
    writes, so the point evaluated is exactly the point shipped (a high-lr point can sit on a knife's
    edge where the 4th digit decides between fine and collapsed)."""
    return rounded({name: dim.suggest(trial, name) for name, dim in exp.search.items()})


def seeded_experiments(path: Path, seeds: list[int], store: Store, overrides: list[str] = ()) -> dict[int, tuple[Experiment, References]]:
    """The file on each data/model seed, with that seed's references (trained once, then cached)."""
    out = {}
    for s in seeds:
        exp = load_experiment(path, [*overrides, *seeded(path, s)])
        out[s] = (exp, prepare(exp, store, torch.device("cpu"))[0])
    return out


def sweep(path: Path, seeds: list[int], trials: int, margin: float, store: Store,
          overrides: list[str] = (), aggregate: str = "min") -> tuple[dict[str, Any], list[dict]]:
    base = load_experiment(path, list(overrides))
    exp_by_seed = seeded_experiments(path, seeds, store, overrides)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    if base.start_point():
        study.enqueue_trial(base.single.complete(base.start_point()))
    study.enqueue_trial(base.single.complete({}))  # the declared defaults, docs/methods.md (where searchable)
    rows = []

    def objective(trial: optuna.Trial) -> float:
        point = suggest(trial, base)
        runs = evaluate_point(exp_by_seed, point, store)
        value, why = robust_score(base, runs, margin, aggregate)
        ms = [m for _, m in runs]
        row = {"trial": trial.number, "robust": value, "why": why,
               **{f"mean_{k}": statistics.fmean(m.get(k, math.nan) for m in ms) for k in ("score", "val_acc", "avg_gap", "test_avg_gap")},
               **point}
        rows.append(row)
        print(f"  trial {trial.number:3d}  robust {value:9.3f}  mean test_avg_gap {row['mean_test_avg_gap']:6.2f}  {why}", flush=True)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=trials)
    best = max(rows, key=lambda r: r["robust"])
    return {name: best[name] for name in base.search}, rows


def print_current(paths: list[Path], seeds: list[int], store: Store) -> int:
    """Per file and seed: the shipped start point's status and headline figures."""
    rows = []
    for path in paths:
        for s in seeds:
            exp = load_experiment(path, seeded(path, s))
            refs, _ = prepare(exp, store, torch.device("cpu"))
            ((_, m),) = evaluate_point({s: (exp, refs)}, exp.start_point(), store)
            key = "val_r_acc" if "val_r_acc" in m else "val_acc"
            rows.append({"yaml": path.name, "seed": s, "status": m["status"], "forget_acc": m.get("forget_acc", math.nan),
                         "retrain_forget_acc": refs.retrain_metrics["forget_acc"], "test_acc": m.get("test_acc", math.nan),
                         "original_test_acc": refs.original_metrics["test_acc"],
                         "val drop": refs.original_metrics[key] - m.get(key, math.nan),  # collapse at max_val_drop
                         "test_avg_gap": m.get("test_avg_gap", math.nan)})
            print(rows[-1], flush=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    print(table(rows, columns))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("yamls", nargs="+", type=Path)
    parser.add_argument("--seeds", default="0,1,2", help="data/model/method seeds every candidate runs on (default 0,1,2)")
    parser.add_argument("--trials", type=int, default=16, help="candidates per file, the current start and the defaults included (16)")
    parser.add_argument("--margin", type=float, default=5.0, help="val_acc points a candidate must keep above the collapse threshold (5)")
    parser.add_argument("--write", action="store_true", help="write the winners' start: values into the YAMLs")
    parser.add_argument("--current", action="store_true", help="only evaluate each file's current start point, per seed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    store = Store(default_cache_dir())
    if args.current:
        return print_current(args.yamls, seeds, store)
    summary = []
    for path in args.yamls:
        started = time.perf_counter()
        print(f"{path}: {args.trials} candidates x seeds {seeds}", flush=True)
        point, rows = sweep(path, seeds, args.trials, args.margin, store)
        best = max(rows, key=lambda r: r["robust"])
        first = rows[0]
        summary.append({"yaml": path.name, "robust (first)": first["robust"], "robust (best)": best["robust"],
                        "test_avg_gap (first)": first["mean_test_avg_gap"], "test_avg_gap (best)": best["mean_test_avg_gap"],
                        "seconds": time.perf_counter() - started})
        print(f"  winner: {point}", flush=True)
        if args.write:
            command = f"python bench/start_points.py {path.as_posix()} --seeds {args.seeds} --trials {args.trials} --margin {args.margin:g}"
            write_start(path, point, command)
    print(table(summary, list(summary[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
