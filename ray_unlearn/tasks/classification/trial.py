"""A classification trial's part (the skeleton is ray_unlearn.trial.run_trial): its data, evaluation and collapse rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ...methods.base import UnlearnData
from ...metrics import evaluate, with_reference
from ...metrics.confidence import confidence_distance, logit_confidence_of
from ...metrics.example_gap import example_gap
from ...objective import score
from ...train import predict_logits
from ..base import TrialSetup
from ..guards import check_finite_outputs
from .references import References

if TYPE_CHECKING:
    from ...config import Experiment


def chance_floor(num_classes: int) -> float:
    """val_acc of a model no better than guessing: chance plus 5 points."""
    return 100.0 / num_classes + 5.0


def trial_setup(exp: "Experiment", refs: References, device: torch.device) -> TrialSetup:
    """A classification trial's part: UnlearnData, the original, the evaluation against the retrain model
    (accuracies, MIA, gaps, the confidence distance, the per-example gap where a population exists, the
    score), val_acc judged for collapse against chance + 5."""
    splits = refs.splits.to(device)
    retrain_phi = logit_confidence_of(predict_logits(refs.model("retrain", device), splits.forget.x), splits.forget.y)
    per_epoch_asr = exp.objective.mia == "asr"  # the final evaluation always reports MIA-ASR

    def scored(model: nn.Module, with_test: bool) -> dict[str, float]:
        try:
            m = with_reference(evaluate(model, splits, exp.data.seed, with_test=with_test, asr=with_test or per_epoch_asr),
                               refs.retrain_metrics)
        except ValueError:  # e.g. the MIA's SVC refusing NaN features: huge finite weights, non-finite outputs
            check_finite_outputs(model, (splits.val, splits.forget))
            raise
        logits = predict_logits(model, splits.forget.x)
        m["forget_conf_distance"] = confidence_distance(logits, retrain_phi, splits.forget.y)
        if refs.example_reference is not None:
            m["example_gap"] = example_gap(logit_confidence_of(logits, splits.forget.y), refs.example_reference)
        m["score"] = score(m, exp.objective)
        return m

    data = UnlearnData(forget=splits.forget, retain=splits.retain, num_classes=splits.info.num_classes,
                       input_range=splits.info.input_range, augment=refs.augment)
    return TrialSetup(data=data, original=refs.model("original", device), evaluate=scored, collapse_key="val_acc",
                      floor=chance_floor(splits.info.num_classes), floor_what="chance + 5",
                      finite_keys=("val_acc", "retain_acc", "forget_acc"))
