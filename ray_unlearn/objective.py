"""Metrics -> the number (or vector) the sweep optimises.

`score` is always "higher is better", so sorting by score in MLflow puts the
winner first whatever the objective:
- combined: retained - mia_weight * |MIA - MIA_retrain| - forget_weight * |UA - UA_retrain|
            (MIA: objective.mia, MIA-Efficacy or MIA-ASR)
- avg_gap:  -avg_gap
either minus each weighted metric of the task's metric table (confidence_weight * forget_conf_distance,
example_weight * example_gap)
- pareto:   the listed metrics, each with its direction, for a multi-objective study
            (score is the combined value, recorded for ranking).
"""

from __future__ import annotations

import math
from typing import Mapping

from .config import METRIC_DIRECTIONS, ObjectiveConfig
from .tasks import all_tasks

# Given to trials that diverge or collapse: below any real score, yet finite for Optuna.
WORST_SCORE = -1000.0


def _task(objective: ObjectiveConfig):
    """The task whose `retained` metric the objective uses (config resolved it against the experiment's task)."""
    return next(t for t in all_tasks() if objective.retained in t.retained)


def forget_gap_metric(objective: ObjectiveConfig) -> str:
    """The gap objective.forget_weight multiplies: that of the task whose `retained` metric the objective uses."""
    return _task(objective).forget_gap


def mia_gap_metric(objective: ObjectiveConfig) -> str:
    """The MIA gap objective.mia names (mia_gap for MIA-Efficacy, mia_asr_gap for MIA-ASR)."""
    return _task(objective).mia_gaps[objective.mia]


def weighted_terms(objective: ObjectiveConfig) -> list[tuple[float, str]]:
    """(weight, metric) pairs subtracted from either kind of score: the task's metric table says which
    objective weight multiplies which of its metrics (forget_conf_distance, example_gap)."""
    return [(getattr(objective, weight), metric) for weight, metric in _task(objective).weights.items() if getattr(objective, weight)]


def combined_score(metrics: Mapping[str, float], objective: ObjectiveConfig) -> float:
    value = metrics[objective.retained] - objective.mia_weight * metrics[mia_gap_metric(objective)]
    if objective.forget_weight:
        value -= objective.forget_weight * metrics[forget_gap_metric(objective)]
    return value


def score(metrics: Mapping[str, float], objective: ObjectiveConfig) -> float:
    """The scalar the sweep maximises; WORST_SCORE if any input is not finite."""
    value = -metrics["avg_gap"] if objective.kind == "avg_gap" else combined_score(metrics, objective)
    for weight, metric in weighted_terms(objective):
        value -= weight * metrics[metric]
    return value if math.isfinite(value) else WORST_SCORE


def targets(objective: ObjectiveConfig) -> list[tuple[str, str]]:
    """(metric, 'max'|'min') pairs the searcher optimises."""
    if objective.kind == "pareto":
        return [(m, METRIC_DIRECTIONS[m]) for m in objective.pareto]
    return [("score", "max")]


def worst_value(direction: str) -> float:
    return WORST_SCORE if direction == "max" else -WORST_SCORE


def describe(objective: ObjectiveConfig) -> str:
    extra = "".join(f" - {weight:g} * {metric}" for weight, metric in weighted_terms(objective))
    if objective.kind == "avg_gap":
        return f"score = -avg_gap{extra} (avg_gap: mean |gap| to retrain over UA, RA, val acc, MIA)"
    if objective.kind == "pareto":
        return "pareto front of " + ", ".join(f"{m} ({d})" for m, d in targets(objective))
    text = f"score = {objective.retained} - {objective.mia_weight:g} * {mia_gap_metric(objective)}"
    if objective.forget_weight:
        text += f" - {objective.forget_weight:g} * {forget_gap_metric(objective)}"
    return text + extra


def dominates(a: Mapping[str, float], b: Mapping[str, float], goals: list[tuple[str, str]]) -> bool:
    """a is at least as good as b on every goal and better on one."""
    better = False
    for metric, direction in goals:
        x, y = (a[metric], b[metric]) if direction == "max" else (-a[metric], -b[metric])
        if x < y:
            return False
        better = better or x > y
    return better


def pareto_front(rows: list[Mapping[str, float]], goals: list[tuple[str, str]]) -> list[Mapping[str, float]]:
    """The rows no other row dominates (rows lacking a goal metric are ignored)."""
    candidates = [r for r in rows if all(isinstance(r.get(m), (int, float)) and math.isfinite(r[m]) for m, _ in goals)]
    return [r for r in candidates if not any(dominates(o, r, goals) for o in candidates if o is not r)]
