"""What a trial ends with, whatever the task: its status and result. No torch."""

from __future__ import annotations

import dataclasses
from typing import Any

STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"  # non-finite loss
STATUS_COLLAPSED = "collapsed"  # final val accuracy far below the original model's, or no better than chance mid-run


class TrialCollapsed(Exception):
    """Raised by the per-epoch hook: the model stayed wrecked for `objective.collapse_patience` evaluations."""

    def __init__(self, message: str, metrics: dict[str, float]):
        super().__init__(message)
        self.metrics = metrics


@dataclasses.dataclass
class TrialResult:
    metrics: dict[str, float]
    status: str
    message: str
    model: Any  # the unlearned nn.Module, or None when the trial failed
    hyperparameters: dict[str, Any]
    figures: dict[str, bytes] = dataclasses.field(default_factory=dict)  # PNGs for the trial's MLflow run
