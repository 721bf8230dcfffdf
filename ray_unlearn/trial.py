"""One trial of any task, repeated over seeds, and the files it leaves behind.

Used by `ray-unlearn run` (no Ray) and by every Ray Tune trial, so both report the same metrics
under the same names. What a trial does is its task's (`tasks.get_task(exp.task).run_trial`);
the statuses, collapse and NaN checks every task shares live in `tasks.outcome` and `tasks.guards`.
"""

from __future__ import annotations

import logging
import statistics
from typing import Any, Mapping

import torch

from .config import Experiment
from .errors import MethodError
from .methods.base import Memo
from .tasks import get_task
from .tasks.base import Report
from .tasks.outcome import STATUS_OK, TrialResult

logger = logging.getLogger(__name__)


def run_trial(
    exp: Experiment,
    refs: Any,
    sampled: Mapping[str, Any],
    *,
    seed: int,
    device: torch.device,
    report: Report | None = None,
    memo: Memo | None = None,
    budget_seconds: float | None = None,
) -> TrialResult:
    """Run the method a trial config names with its sampled hyperparameters (plus `fixed`), as its task does."""
    return get_task(exp.task).run_trial(exp, refs, sampled, seed=seed, device=device, report=report, memo=memo,
                                        budget_seconds=budget_seconds)


def run_repeats(
    exp: Experiment,
    refs: Any,
    sampled: Mapping[str, Any],
    *,
    device: torch.device,
    report: Report | None = None,
    memo: Memo | None = None,
) -> TrialResult:
    """`tune.repeats` runs of one configuration on seeds tune.seed, tune.seed + 1, ...

    Per-epoch reports come from the first run (so a scheduler decides on it);
    the result holds each metric's mean, `<metric>_std` for the main ones and
    `repeats`. A run that diverges or collapses ends the trial with its status.
    """
    results = []
    for r in range(exp.tune.repeats):
        result = run_trial(exp, refs, sampled, seed=exp.tune.seed + r, device=device, report=report if r == 0 else None, memo=memo)
        if result.status != STATUS_OK or exp.tune.repeats == 1:
            return result
        results.append(result)
    keys = set.intersection(*(set(r.metrics) for r in results))
    metrics = {k: statistics.fmean(r.metrics[k] for r in results) for k in keys}
    for k in get_task(exp.task).spread_metrics:
        if k in keys:
            metrics[f"{k}_std"] = statistics.pstdev(r.metrics[k] for r in results)
    metrics["repeats"] = float(len(results))
    messages = "; ".join(sorted({r.message for r in results if r.message}))
    return TrialResult(metrics, STATUS_OK, messages, results[0].model, results[0].hyperparameters, results[0].figures)


def write_trial_files(folder: str, result: TrialResult, history: list[dict], info: Mapping[str, Any], save_model: bool) -> None:
    """What a trial leaves behind: final metrics + hyperparameters, per-epoch history, optionally weights."""
    import csv
    import json
    from pathlib import Path

    out = Path(folder)
    summary = {"status": result.status, "message": result.message, "hyperparameters": result.hyperparameters,
               "metrics": result.metrics, **{k: v for k, v in info.items() if k not in ("status", "message")}}
    (out / "metrics.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
    if history:
        columns = sorted({k for row in history for k in row})
        with open(out / "history.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(history)
    for name, png in result.figures.items():
        (out / name).write_bytes(png)
    if save_model and result.model is not None:
        torch.save({k: v.detach().cpu() for k, v in result.model.state_dict().items()}, out / "model.pt")


def check_method_inputs(exp: Experiment, refs: Any) -> None:
    """Clear errors before a sweep starts, rather than in every trial."""
    if len(refs.splits.forget_idx) == 0:
        raise MethodError("the forget set is empty; nothing to unlearn")
