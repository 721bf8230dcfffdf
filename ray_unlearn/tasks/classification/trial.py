"""One classification trial: copy the original, run the method, evaluate against retrain, score."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn

from ...methods.base import Context, Memo, UnlearnData, in_memory_memo
from ...metrics import evaluate, with_reference
from ...metrics.confidence import confidence_distance, logit_confidence_of
from ...metrics.example_gap import example_gap
from ...objective import WORST_SCORE, score
from ...registry import get_method
from ...train import predict_logits
from ..guards import (
    Report,
    check_finite,
    check_finite_outputs,
    collapse_message,
    epoch_reporter,
    failed,
    stopped_collapsed,
    wrecked_message,
)
from ..outcome import STATUS_COLLAPSED, STATUS_DIVERGED, STATUS_OK, TrialCollapsed, TrialResult
from .references import References

if TYPE_CHECKING:
    from ...config import Experiment


def chance_floor(num_classes: int) -> float:
    """val_acc of a model no better than guessing: chance plus 5 points."""
    return 100.0 / num_classes + 5.0


def run_trial(
    exp: "Experiment",
    refs: References,
    sampled: Mapping[str, Any],
    *,
    seed: int,
    device: torch.device,
    report: Report | None = None,
    memo: Memo | None = None,
    budget_seconds: float | None = None,
) -> TrialResult:
    """Run the method a trial config names with its sampled hyperparameters (plus `fixed`)."""
    method_name, _ = exp.resolve(sampled)
    method = get_method(method_name)  # built-in or plugin
    hp = exp.method_params(sampled)
    splits = refs.splits.to(device)
    original = refs.model("original", device)
    data = UnlearnData(
        forget=splits.forget,
        retain=splits.retain,
        num_classes=splits.info.num_classes,
        input_range=splits.info.input_range,
        augment=refs.augment,
    )
    retrain = refs.retrain_metrics
    retrain_phi = logit_confidence_of(predict_logits(refs.model("retrain", device), splits.forget.x), splits.forget.y)
    started = time.perf_counter()
    per_epoch_asr = exp.objective.mia == "asr"  # the final evaluation always reports MIA-ASR

    def scored(model: nn.Module, with_test: bool) -> dict[str, float]:
        check_finite(model)  # a last step can leave NaN weights behind a finite mean loss
        try:
            m = with_reference(evaluate(model, splits, exp.data.seed, with_test=with_test, asr=with_test or per_epoch_asr), retrain)
        except ValueError:  # e.g. the MIA's SVC refusing NaN features: huge finite weights, non-finite outputs
            check_finite_outputs(model, (splits.val, splits.forget))
            raise
        logits = predict_logits(model, splits.forget.x)
        m["forget_conf_distance"] = confidence_distance(logits, retrain_phi, splits.forget.y)
        if refs.example_reference is not None:
            m["example_gap"] = example_gap(logit_confidence_of(logits, splits.forget.y), refs.example_reference)
        m["score"] = score(m, exp.objective)
        return m

    floor = chance_floor(splits.info.num_classes)
    on_epoch = epoch_reporter(exp, report, scored, started, lambda m: wrecked_message(m, "val_acc", floor, "chance + 5"))
    ctx = Context(device=device, seed=seed, on_epoch=on_epoch, budget_seconds=budget_seconds, memo=memo or in_memory_memo())
    status, message = STATUS_OK, ""
    try:
        model = method.run(original, data, hp, ctx)
        seconds = time.perf_counter() - started
        metrics = scored(model, with_test=True)
    except FloatingPointError as err:
        return failed(STATUS_DIVERGED, f"{method_name} diverged: {err}", hp)
    except TrialCollapsed as stop:
        return stopped_collapsed(stop, hp, started)
    metrics.update(ctx.extras)
    metrics["seconds"] = seconds
    if not all(math.isfinite(v) for k, v in metrics.items() if k in ("val_acc", "retain_acc", "forget_acc")):
        return failed(STATUS_DIVERGED, "non-finite accuracy", hp)
    collapsed = collapse_message(exp, metrics, refs.original_metrics)
    if collapsed:
        status, message = STATUS_COLLAPSED, collapsed
        metrics["score"] = WORST_SCORE
    if ctx.stopped_reason:
        message = (message + "; " if message else "") + ctx.stopped_reason
    return TrialResult(metrics, status, message, model, dataclasses.asdict(hp))
