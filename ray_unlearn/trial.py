"""One trial of any task, repeated over seeds, and the files it leaves behind.

Used by `ray-unlearn run` (no Ray) and by every Ray Tune trial, so both report the same metrics
under the same names. The skeleton is the same for every task; what differs is the task's
(`tasks.get_task(exp.task).trial_setup`); the statuses, collapse and NaN checks live in
`tasks.outcome` and `tasks.guards`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import time
from typing import Any, Mapping

import torch
from torch import nn

from .config import Experiment
from .errors import MethodError
from .methods.base import Context, Memo, in_memory_memo
from .objective import WORST_SCORE
from .registry import get_method
from .tasks import get_task
from .tasks.base import Report
from .tasks.guards import check_finite, collapse_message, epoch_reporter, failed, stopped_collapsed, wrecked_message
from .tasks.outcome import STATUS_COLLAPSED, STATUS_DIVERGED, STATUS_OK, TrialCollapsed, TrialResult

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
    """Run the method a trial config names with its sampled hyperparameters (plus `fixed`) on `refs` and
    evaluate it against the retrain model: one skeleton for every task, which supplies only its part
    (`Task.trial_setup`: data, evaluation, collapse figure and floor, figures).

    Per-epoch evaluations go to `report` (at most every tune.report_seconds) and stop the trial as
    collapsed once the model stays wrecked; non-finite weights or outputs make it diverged; a final
    figure more than objective.max_val_drop below the original's makes it collapsed. Either gets the
    worst score."""
    method_name, _ = exp.resolve(sampled)
    method = get_method(method_name)  # built-in or plugin
    hp = exp.method_params(sampled)
    setup = get_task(exp.task).trial_setup(exp, refs, device)

    def scored(model: nn.Module, with_test: bool) -> dict[str, float]:
        check_finite(model)  # a last step can leave NaN weights behind a finite mean loss
        return setup.evaluate(model, with_test)

    started = time.perf_counter()
    on_epoch = epoch_reporter(exp, report, scored, started,
                              lambda m: wrecked_message(m, setup.collapse_key, setup.floor, setup.floor_what))
    ctx = Context(device=device, seed=seed, on_epoch=on_epoch, budget_seconds=budget_seconds, memo=memo or in_memory_memo())
    try:
        model = method.run(setup.original, setup.data, hp, ctx)
        seconds = time.perf_counter() - started
        metrics = scored(model, with_test=True)
    except FloatingPointError as err:
        return failed(STATUS_DIVERGED, f"{method_name} diverged: {err}", hp)
    except TrialCollapsed as stop:
        return stopped_collapsed(stop, hp, started)
    metrics.update(ctx.extras)
    metrics["seconds"] = seconds
    if not all(math.isfinite(metrics[k]) for k in setup.finite_keys):
        return failed(STATUS_DIVERGED, f"non-finite {', '.join(setup.finite_keys)}", hp)
    status, message = STATUS_OK, ""
    if collapsed := collapse_message(exp, metrics, refs.original_metrics, key=setup.collapse_key, unit=setup.unit):
        status, message = STATUS_COLLAPSED, collapsed
        metrics["score"] = WORST_SCORE
    if ctx.stopped_reason:
        message = (message + "; " if message else "") + ctx.stopped_reason
    figures = setup.figures(model) if setup.figures is not None else {}
    return TrialResult(metrics, status, message, model, dataclasses.asdict(hp), figures)


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
