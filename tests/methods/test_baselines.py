"""Properties of the baselines that a wrong implementation would fail (METHODS.md §3)."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from ray_unlearn.config import parse_experiment
from ray_unlearn.data.base import TensorSet
from ray_unlearn.objective import WORST_SCORE
from ray_unlearn.trial import run_trial

from ..conftest import digits_config
from .common import run_method, state_equal, unlearn_data


def test_finetune_never_reads_the_forget_set(digits_refs):
    data = unlearn_data(digits_refs)
    poisoned = TensorSet(torch.full_like(data.forget.x, float("nan")), data.forget.y)
    clean, _ = run_method("finetune", digits_refs, data=data)
    dirty, _ = run_method("finetune", digits_refs, data=dataclasses.replace(data, forget=poisoned))
    assert state_equal(clean, dirty)


def test_gradient_ascent_raises_the_forget_loss(digits_refs):
    forget = digits_refs.splits.forget
    original = digits_refs.model("original", torch.device("cpu"))
    model, _ = run_method("gradient_ascent", digits_refs, lr=1e-3, epochs=3)
    with torch.no_grad():
        before = F.cross_entropy(original.eval()(forget.x), forget.y).item()
        after = F.cross_entropy(model.eval()(forget.x), forget.y).item()
    assert after > before


def test_gradient_ascent_never_reads_the_retain_set(digits_refs):
    data = unlearn_data(digits_refs)
    poisoned = TensorSet(torch.full_like(data.retain.x, float("nan")), data.retain.y)
    clean, _ = run_method("gradient_ascent", digits_refs, data=data)
    dirty, _ = run_method("gradient_ascent", digits_refs, data=dataclasses.replace(data, retain=poisoned))
    assert state_equal(clean, dirty)


def test_a_diverging_trial_ends_with_a_status_and_the_worst_score(digits_refs):
    exp = parse_experiment(digits_config(method="gradient_ascent", fixed={"lr": 1000.0, "epochs": 10}))
    result = run_trial(exp, digits_refs, {}, seed=0, device=torch.device("cpu"))
    assert result.status in ("diverged", "collapsed")
    assert result.metrics["score"] == WORST_SCORE
