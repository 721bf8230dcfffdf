"""Trial machinery every task shares: collapse and NaN checks, per-epoch reporting, failed results.

Judged the same way for every task (docs/metrics.md#collapsed-and-diverged-trials); each task says which metric and floor.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch
from torch import nn

from ..objective import WORST_SCORE
from .base import Report
from .outcome import STATUS_COLLAPSED, TrialCollapsed, TrialResult

if TYPE_CHECKING:
    from ..config import Experiment

logger = logging.getLogger(__name__)

def collapse_message(exp: "Experiment", metrics: Mapping[str, float], original: Mapping[str, float], key: str = "val_acc", unit: str = "") -> str | None:
    """Why `metrics` count as collapsed (`key` more than objective.max_val_drop below the original's), or None.

    docs/metrics.md#collapsed-and-diverged-trials prunes against the *original* model's val_acc. For class-wise forgetting the
    comparison is on the kept classes (`val_r_acc`): there the retrain model's val_acc is itself
    ~10 points below the original's (the forgotten class is gone), so a literal reading would
    prune the ideal result, and a threshold relative to the retrain model (the old rule) would
    let through models that lost another tenth of their accuracy on what they should keep.
    """
    if key == "val_acc" and "val_r_acc" in metrics and "val_r_acc" in original:
        key = "val_r_acc"
    drop = exp.objective.max_val_drop
    if drop is None or not metrics[key] < original[key] - drop:
        return None
    return f"{key} {metrics[key]:.1f}{unit} is more than {drop:g}{unit} below the original model's {original[key]:.1f}{unit}"


def wrecked_message(metrics: Mapping[str, float], key: str, floor: float, what: str) -> str | None:
    """Why an intermediate model counts as wrecked (`key` at or below `floor`, `what` the floor is), or None.

    Judged per epoch, this must not mistake a planned dip for a collapse: methods that train from
    scratch (retrain) or damage then repair (l1_sparse, SCRUB, AMUN without retain set) pass through
    accuracies far below the retrain model's and recover (seen on the shipped YAMLs' start points).
    A model no better than guessing is another matter.
    """
    if not metrics[key] <= floor:
        return None
    return f"{key} {metrics[key]:.1f} is no better than {what} ({floor:.1f})"


def epoch_reporter(
    exp: "Experiment",
    report: Report | None,
    scored: Callable[[nn.Module, bool], dict],
    started: float,
    wrecked: Callable[[dict], str | None] | None = None,
) -> Callable:
    """The methods' per-epoch hook: evaluate and report, at most every `tune.report_seconds`.

    Each report costs an evaluation (accuracies, an MIA fit), which on digits costs more than
    an epoch; ASHA needs every epoch, so it gets every epoch. When `wrecked` names a reason
    for `objective.collapse_patience` evaluations in a row, the trial stops (TrialCollapsed):
    its remaining epochs are compute other trials need.
    """
    min_seconds = 0.0 if exp.tune.scheduler == "asha" else exp.tune.report_seconds
    patience = exp.objective.collapse_patience
    last = [-math.inf]
    streak = [0]

    def on_epoch(epoch: int, model: nn.Module, logs: dict) -> None:
        now = time.perf_counter()
        if report is None or now - last[0] < min_seconds:
            return
        last[0] = now
        metrics = {**scored(model, False), **logs, "epoch": epoch, "seconds": now - started}
        report(metrics)
        reason = wrecked(metrics) if wrecked is not None else None
        streak[0] = streak[0] + 1 if reason else 0
        if reason and patience and streak[0] >= patience:
            raise TrialCollapsed(f"{reason} for {streak[0]} evaluations in a row: stopped after epoch {epoch}", metrics)

    return on_epoch


def stopped_collapsed(stop: TrialCollapsed, hp: Any, started: float) -> TrialResult:
    """The result of a trial the per-epoch hook stopped: its last evaluation, the worst score."""
    logger.warning(str(stop))
    metrics = {k: float(v) for k, v in stop.metrics.items() if isinstance(v, (int, float)) and k != "epoch"}
    metrics.update(score=WORST_SCORE, seconds=time.perf_counter() - started)
    return TrialResult(metrics, STATUS_COLLAPSED, str(stop), None, dataclasses.asdict(hp))


def check_finite(model: nn.Module) -> None:
    """Raise FloatingPointError if any weight or buffer of `model` is NaN or infinite."""
    tensors = [(name, t) for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_floating_point()]
    if not tensors:
        return
    finite = torch.stack([torch.isfinite(t.detach()).all() for _, t in tensors]).cpu()  # one device sync
    if not bool(finite.all()):
        bad = next(name for (name, _), ok in zip(tensors, finite.tolist(), strict=True) if not ok)
        raise FloatingPointError(f"weights became non-finite ({bad})")


def check_finite_outputs(model: nn.Module, sets: tuple) -> None:
    """Raise FloatingPointError if `model` gives a NaN or infinite output on any sample of `sets`."""
    from ..train import predict_logits

    for data in sets:
        if len(data) and not bool(torch.isfinite(predict_logits(model, data.x)).all()):
            raise FloatingPointError("model outputs became non-finite")


def failed(status: str, message: str, hp: Any) -> TrialResult:
    logger.warning(message)
    return TrialResult({"score": WORST_SCORE}, status, message, None, dataclasses.asdict(hp))
