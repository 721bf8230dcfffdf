"""PNG figures for the sweep's parent run: optimisation history, parameter
importances, Pareto front. matplotlib (Agg) only; returns the files written."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from .space import SearchDim

logger = logging.getLogger(__name__)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ordinal(row: Mapping[str, Any]) -> int:
    tail = str(row.get("run_name", "")).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def history_plot(rows: Sequence[Mapping[str, Any]], path: Path, metric: str = "score") -> Path | None:
    """Each trial's score in creation order, with the best so far."""
    done = sorted((r for r in rows if r.get("status") == "ok" and _finite(r.get(metric))), key=_ordinal)
    if not done:
        return None
    plt = _pyplot()
    xs = [_ordinal(r) for r in done]
    ys = [float(r[metric]) for r in done]
    best, running = [], -math.inf
    for y in ys:
        running = max(running, y)
        best.append(running)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.scatter(xs, ys, s=14, label=metric)
    ax.step(xs, best, where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("optimisation history")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def importance_plot(rows: Sequence[Mapping[str, Any]], space: Mapping[str, SearchDim], path: Path, metric: str = "score") -> Path | None:
    """Optuna's fANOVA importances of the searched hyperparameters for `metric`."""
    import optuna

    distributions = {name: dim.to_optuna() for name, dim in space.items()}
    trials = []
    for r in rows:
        params = r.get("hyperparameters", {})
        if r.get("status") != "ok" or not _finite(r.get(metric)) or set(params) != set(distributions):
            continue
        trials.append(optuna.trial.create_trial(params=dict(params), distributions=distributions, value=float(r[metric])))
    if len(trials) < 3 or len(distributions) < 1:
        return None
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as err:  # e.g. every trial has the same value
        logger.info("no parameter importances: %s", err)
        return None
    plt = _pyplot()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(names)), dpi=100)
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel(f"importance for {metric} (fANOVA)")
    ax.set_title("hyperparameter importances")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def pareto_plot(rows: Sequence[Mapping[str, Any]], front: Sequence[Mapping[str, Any]], goals: list[tuple[str, str]], path: Path) -> Path | None:
    """The first two objectives of every trial, the front highlighted."""
    (mx, dx), (my, dy) = goals[0], goals[1]
    pts = [r for r in rows if _finite(r.get(mx)) and _finite(r.get(my)) and r.get("status") == "ok"]
    if not pts:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.scatter([r[mx] for r in pts], [r[my] for r in pts], s=14, color="0.6", label="trials")
    ordered = sorted(front, key=lambda r: r[mx])
    ax.plot([r[mx] for r in ordered], [r[my] for r in ordered], "o-", color="C3", label="Pareto front")
    ax.set_xlabel(f"{mx} ({dx})")
    ax.set_ylabel(f"{my} ({dy})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def epsilon_histogram(epsilons: Sequence[float], path: Path, title: str, cap: float = 50.0) -> Path:
    """Per-forget-example epsilon of the audit's threshold attacks (perfect separation drawn at the cap)."""
    import numpy as np

    plt = _pyplot()
    eps = np.minimum(np.asarray(epsilons, dtype=float), cap)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(eps, bins=np.arange(0.0, max(float(eps.max()) if eps.size else 1.0, 1.0) + 0.5, 0.5), color="#3b75af")
    ax.set_xlabel("per-example epsilon (bucket width 0.5; lower = better forgotten)")
    ax.set_ylabel("forget examples")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def quality_plot(rows: Sequence[Mapping[str, Any]], nothing: Mapping[str, Any], floor: Mapping[str, Any], path: Path,
                 title: str) -> Path:
    """Held-out Avg Gap per method at a glance: each method's mean ± spread (and its worst seed), beside the
    lines of doing nothing and of retrain vs retrain (the noise floor); rows are confirm.summarise rows
    named by `row`, best first."""
    plt = _pyplot()
    rows = sorted(rows, key=lambda r: r["test_avg_gap_mean"])
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(rows) + 2.4))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, [r["test_avg_gap_mean"] for r in rows], xerr=[r["test_avg_gap_std"] for r in rows], color="#4c72b0",
            alpha=0.85, capsize=3, label="mean ± spread over held-out seeds")
    ax.scatter([r["test_avg_gap_max"] for r in rows], y, marker="|", s=120, color="black", zorder=3, label="worst seed")
    for value, colour, label in ((nothing["test_avg_gap_mean"], "#c44e52", "doing nothing"),
                                 (floor["test_avg_gap_mean"], "#55a868", "retrain vs retrain (noise floor)")):
        ax.axvline(value, color=colour, linestyle="--", linewidth=1.5, label=f"{label}: {value:.2f}")
    ax.set_yticks(y)
    ax.set_yticklabels([r["row"] for r in rows])
    ax.set_xlabel("test Avg Gap to retrain (lower is better)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
