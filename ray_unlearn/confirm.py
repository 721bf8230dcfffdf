"""Held-out confirmation: a configuration re-run on seeds and forget sets the sweep never saw.

A sweep selects on one split, one forget set and one model seed, so part of what makes a winner
is noise. The figures to report come from other seeds: for each held-out seed s, the data split
and forget selection (`data.seed`), the reference models (`train.seed`, trained and cached for
that seed) and the method seed are all s; the test split gives UA / RA / TA / MIA / Avg Gap as the
papers' tables do, as mean and spread over the seeds, beside the untouched original and the
retrain reference of the same seeds.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Callable, Mapping, Sequence

import torch

from .cache import Store
from .config import Experiment, parse_experiment
from .errors import ConfigError
from .references import prepare
from .trial import run_trial

NOISE_SEED_OFFSET = 1000
NOISE_ROW = "retrain vs retrain (noise floor)"
ORIGINAL_ROW = "original (no unlearning)"
COLUMNS = ("ua", "retain_acc", "test_acc", "test_mia", "test_avg_gap")
HEADERS = {"ua": "UA", "retain_acc": "RA", "test_acc": "TA", "test_mia": "MIA", "test_avg_gap": "Avg Gap"}


def fixed_experiment(exp: Experiment, method: str, hyperparameters: Mapping[str, Any], seed: int) -> Experiment:
    """`exp` running `method` with `hyperparameters` fixed, on data/model seed `seed`."""
    raw = exp.to_dict()
    raw["method"] = method
    raw["fixed"] = dict(hyperparameters)
    raw["search"] = {}
    raw["objective"].update(example_weight=0.0, population=0)  # test figures are reported, the score is not
    return parse_experiment(raw, source=f"{exp.source} ({method}, held-out seed {seed})").reseeded(seed)


def held_out(
    exp: Experiment,
    configurations: Sequence[tuple[str, str, Mapping[str, Any]]],  # (row name, method, hyperparameters)
    seeds: Sequence[int],
    store: Store,
    device: torch.device,
    progress: Callable[[str], None] | None = None,
    noise_floor: bool = True,
) -> list[dict[str, Any]]:
    """One row per configuration, plus the original (doing nothing) and, with `noise_floor`, a
    retrain model of another model seed (seed + NOISE_SEED_OFFSET) scored against the reference
    retrain: what Avg Gap two exact unlearnings differ by. Each column is `mean ± spread`."""
    if not seeds:
        raise ConfigError("--forget-seeds", "give at least one seed, e.g. 1,2,3")
    if exp.data.seed in seeds:
        raise ConfigError("--forget-seeds", f"seed {exp.data.seed} is the sweep's own data.seed: held-out seeds must differ",
                          value=list(seeds))
    per_row: dict[str, list[dict[str, float]]] = {ORIGINAL_ROW: []}
    if noise_floor:
        per_row[NOISE_ROW] = []
    for seed in seeds:
        for name, method, hp in configurations:
            run_exp = fixed_experiment(exp, method, hp, seed)
            refs, _ = prepare(run_exp, store, device)
            if name == configurations[0][0]:
                per_row[ORIGINAL_ROW].append(_with_test_gap(refs.original_metrics, refs.retrain_metrics))
                if noise_floor:
                    other_seed = dataclasses.replace(run_exp, train=dataclasses.replace(run_exp.train, seed=seed + NOISE_SEED_OFFSET))
                    other, _ = prepare(other_seed, store, device)
                    per_row[NOISE_ROW].append(_with_test_gap(other.retrain_metrics, refs.retrain_metrics))
            result = run_trial(run_exp, refs, {}, seed=seed, device=device, memo=store.memo(refs.key))
            metrics = result.metrics if result.status == "ok" else {k: math.nan for k in COLUMNS}
            per_row.setdefault(name, []).append({**metrics, "status": result.status})
            if progress is not None:
                progress(f"held-out seed {seed}: {name} {result.status}")
    return [summarise(name, runs, len(seeds)) for name, runs in per_row.items()]


def _with_test_gap(metrics: Mapping[str, float], retrain: Mapping[str, float]) -> dict[str, float]:
    from .metrics import gaps

    return {**metrics, **gaps(dict(metrics), dict(retrain))}


def summarise(name: str, runs: list[Mapping[str, Any]], n_seeds: int, columns: Sequence[str] = COLUMNS) -> dict[str, Any]:
    """One row of a held-out table: per column its mean, spread and worst over the runs, and `mean ± spread`
    under the column's header; `failed` counts the runs that did not end ok, `status` names their statuses."""
    bad = sorted({str(r.get("status")) for r in runs if r.get("status", "ok") != "ok"})
    row: dict[str, Any] = {"configuration": name, "seeds": n_seeds, "failed": sum(r.get("status", "ok") != "ok" for r in runs),
                           "status": ",".join(bad) or "ok"}
    for key in columns:
        values = [float(r[key]) for r in runs if key in r and math.isfinite(float(r[key]))]
        row[f"{key}_mean"] = statistics.fmean(values) if values else math.nan
        row[f"{key}_std"] = statistics.pstdev(values) if len(values) > 1 else 0.0
        row[f"{key}_max"] = max(values) if values else math.nan
        row[HEADERS.get(key, key)] = f"{row[f'{key}_mean']:.2f} ± {row[f'{key}_std']:.2f}" if values else "-"
    return row
