"""One trial: copy the original, run the method, evaluate against retrain, score.

Used by `ray-unlearn run` (no Ray) and by every Ray Tune trial, so both
report the same metrics under the same names.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .config import Experiment
from .errors import MethodError
from .methods import Context, UnlearnData, get_method
from .methods.base import Memo, in_memory_memo
from .metrics import evaluate, with_reference
from .objective import WORST_SCORE, score
from .references import References

logger = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]

STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"  # non-finite loss
STATUS_COLLAPSED = "collapsed"  # val accuracy far below the retrain model's


@dataclasses.dataclass
class TrialResult:
    metrics: dict[str, float]
    status: str
    message: str
    model: nn.Module | None
    hyperparameters: dict[str, Any]


def run_trial(
    exp: Experiment,
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
    method = get_method(method_name)
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
    started = time.perf_counter()

    def scored(model: nn.Module, with_test: bool) -> dict[str, float]:
        m = with_reference(evaluate(model, splits, exp.data.seed, with_test=with_test), retrain)
        m["score"] = score(m, exp.objective)
        return m

    def on_epoch(epoch: int, model: nn.Module, logs: dict) -> None:
        if report is not None:
            report({**scored(model, with_test=False), **logs, "epoch": epoch, "seconds": time.perf_counter() - started})

    ctx = Context(device=device, seed=seed, on_epoch=on_epoch, budget_seconds=budget_seconds, memo=memo or in_memory_memo())
    status, message = STATUS_OK, ""
    try:
        model = method.run(original, data, hp, ctx)
    except FloatingPointError as err:
        return _failed(STATUS_DIVERGED, f"{method_name} diverged: {err}", hp)
    seconds = time.perf_counter() - started
    metrics = scored(model, with_test=True)
    metrics.update(ctx.extras)
    metrics["seconds"] = seconds
    if not all(math.isfinite(v) for k, v in metrics.items() if k in ("val_acc", "retain_acc", "forget_acc")):
        return _failed(STATUS_DIVERGED, "non-finite accuracy", hp)
    drop = exp.objective.max_val_drop
    if drop is not None and metrics["val_acc"] < retrain["val_acc"] - drop:
        status = STATUS_COLLAPSED
        message = f"val_acc {metrics['val_acc']:.1f} is more than {drop:g} below the retrain model's {retrain['val_acc']:.1f}"
        metrics["score"] = WORST_SCORE
    if ctx.stopped_reason:
        message = (message + "; " if message else "") + ctx.stopped_reason
    return TrialResult(metrics, status, message, model, dataclasses.asdict(hp))


def _failed(status: str, message: str, hp: Any) -> TrialResult:
    logger.warning(message)
    return TrialResult({"score": WORST_SCORE}, status, message, None, dataclasses.asdict(hp))


def check_method_inputs(exp: Experiment, refs: References) -> None:
    """Clear errors before a sweep starts, rather than in every trial."""
    if len(refs.splits.forget_idx) == 0:
        raise MethodError("the forget set is empty; nothing to unlearn")
