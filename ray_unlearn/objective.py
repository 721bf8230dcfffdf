"""Metrics -> the number (or vector) the sweep optimises.

`score` is always "higher is better", so sorting by score in MLflow puts the
winner first whatever the objective:
- combined: retained - mia_weight * |MIA - MIA_retrain| - forget_weight * |UA - UA_retrain|
- avg_gap:  -avg_gap
- pareto:   the listed metrics, each with its direction, for a multi-objective study
            (score is the combined value, recorded for ranking).
"""

from __future__ import annotations

import math
from typing import Mapping

from .config import METRIC_DIRECTIONS, ObjectiveConfig

# Given to trials that diverge or collapse: below any real score, yet finite for Optuna.
WORST_SCORE = -1000.0


def combined_score(metrics: Mapping[str, float], objective: ObjectiveConfig) -> float:
    return (
        metrics[objective.retained]
        - objective.mia_weight * metrics["mia_gap"]
        - objective.forget_weight * metrics["ua_gap"]
    )


def score(metrics: Mapping[str, float], objective: ObjectiveConfig) -> float:
    """The scalar the sweep maximises; WORST_SCORE if any input is not finite."""
    value = -metrics["avg_gap"] if objective.kind == "avg_gap" else combined_score(metrics, objective)
    return value if math.isfinite(value) else WORST_SCORE


def targets(objective: ObjectiveConfig) -> list[tuple[str, str]]:
    """(metric, 'max'|'min') pairs the searcher optimises."""
    if objective.kind == "pareto":
        return [(m, METRIC_DIRECTIONS[m]) for m in objective.pareto]
    return [("score", "max")]


def worst_value(direction: str) -> float:
    return WORST_SCORE if direction == "max" else -WORST_SCORE


def describe(objective: ObjectiveConfig) -> str:
    if objective.kind == "avg_gap":
        return "score = -avg_gap (mean |gap| to retrain over UA, RA, val acc, MIA)"
    if objective.kind == "pareto":
        return "pareto front of " + ", ".join(f"{m} ({d})" for m, d in targets(objective))
    text = f"score = {objective.retained} - {objective.mia_weight:g} * mia_gap"
    if objective.forget_weight:
        text += f" - {objective.forget_weight:g} * ua_gap"
    return text
