"""Properties of the baselines that a wrong implementation would fail (docs/methods.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
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


@pytest.mark.parametrize("patience", [0, 2, 3])
def test_a_wrecked_trial_stops_after_patience_evaluations_no_better_than_chance(digits_refs, patience):
    """Gradient ascent with lr 0.5 drives val_acc to chance (10 %) within 3 epochs; it is stopped, not trained on."""
    exp = parse_experiment(digits_config(method="gradient_ascent", fixed={"lr": 0.5, "epochs": 8},
                                         objective={"collapse_patience": patience}, tune={"report_seconds": 0}))
    reports: list[dict] = []
    result = run_trial(exp, digits_refs, {}, seed=0, device=torch.device("cpu"), report=reports.append)
    assert result.status == "collapsed" and result.metrics["score"] == WORST_SCORE
    vals = [r["val_acc"] for r in reports]
    if patience:
        wrecked = [v <= 15.0 for v in vals]  # chance (10 classes) + 5
        assert wrecked[-patience:] == [True] * patience and not all(wrecked[-patience - 1:]), vals
        assert len(reports) < 8 and result.model is None and f"{patience} evaluations in a row" in result.message
        assert "no better than chance" in result.message
    else:
        assert len(reports) == 8 and result.model is not None, "patience 0 judges only the final model"
        assert "below the original model's" in result.message


@pytest.mark.parametrize("method,fixed", [
    ("finetune", {"lr": 0.01, "epochs": 4}),
])
def test_a_healthy_trial_is_never_stopped_as_collapsed(digits_refs, method, fixed):
    from ray_unlearn.config import load_experiment

    if fixed is None:  # the shipped YAML's start point
        path = Path(__file__).resolve().parents[2] / "search_spaces" / f"digits_{method}.yaml"
        exp = load_experiment(path, ["tune.report_seconds=0"])
        sampled = exp.start_point()
    else:
        exp = parse_experiment(digits_config(method=method, fixed=fixed, tune={"report_seconds": 0}))
        sampled = {}
    reports: list[dict] = []
    result = run_trial(exp, digits_refs, sampled, seed=0, device=torch.device("cpu"), report=reports.append)
    assert result.status == "ok", result.message
    assert len(reports) == exp.method_params(sampled).epochs


@pytest.mark.parametrize("curve, stopped_after", [
    # a planned dip (l1_sparse's sparse phase, retraining from scratch) far below the original, then recovery
    ([95.0, 67.0, 66.0, 80.0, 97.0], None),
    ([95.0, 14.0, 90.0, 12.0, 97.0], None),  # wrecked once, twice, never twice in a row
    ([95.0, 60.0, 14.0, 13.0, 97.0], 4),  # chance (10 classes) + 5 = 15: two evaluations in a row stop it
])
def test_the_per_epoch_rule_stops_a_wrecked_model_not_a_dip(curve, stopped_after):
    """The rule itself, on a hand-fed val_acc curve (a dip is judged independently of any real run)."""
    from ray_unlearn.tasks.guards import epoch_reporter, wrecked_message
    from ray_unlearn.tasks.outcome import TrialCollapsed

    exp = parse_experiment(digits_config(objective={"collapse_patience": 2}, tune={"report_seconds": 0}))
    values = iter(curve)
    hook = epoch_reporter(exp, lambda m: None, lambda model, with_test: {"val_acc": next(values)}, 0.0,
                          lambda m: wrecked_message(m, "val_acc", 15.0, "chance + 5"))
    epochs_run = 0
    try:
        for epoch in range(1, len(curve) + 1):
            epochs_run = epoch
            hook(epoch, None, {})
    except TrialCollapsed as stop:
        assert stopped_after == epochs_run and "2 evaluations in a row" in str(stop)
    else:
        assert stopped_after is None and epochs_run == len(curve)


def test_neggrad_plus_with_beta_1_is_finetuning(digits_refs):
    ng, _ = run_method("neggrad_plus", digits_refs, beta=1.0, lr=0.01, epochs=2)
    ft, _ = run_method("finetune", digits_refs, lr=0.01, epochs=2)
    assert state_equal(ng, ft)


def test_neggrad_plus_with_beta_below_1_differs_from_finetuning(digits_refs):
    ng, _ = run_method("neggrad_plus", digits_refs, beta=0.9, lr=0.01, epochs=2)
    ft, _ = run_method("finetune", digits_refs, lr=0.01, epochs=2)
    assert not state_equal(ng, ft)


def test_scrub_without_max_steps_or_distillation_is_finetuning(digits_refs):
    sc, _ = run_method("scrub", digits_refs, msteps=0, alpha=0.0, gamma=1.0, lr=0.01, epochs=2)
    ft, _ = run_method("finetune", digits_refs, lr=0.01, epochs=2)
    assert state_equal(sc, ft)


def test_scrub_alternates_max_and_min_passes(digits_refs):
    from ray_unlearn.methods import METHODS, Context

    from .common import quick_params

    logs = []
    ctx = Context(seed=0, on_epoch=lambda e, m, l: logs.append(sorted(l)))
    METHODS["scrub"]().run(digits_refs.model("original", torch.device("cpu")), unlearn_data(digits_refs),
                           quick_params("scrub", msteps=2, epochs=4), ctx)
    assert logs == [["max_loss", "min_loss"], ["max_loss", "min_loss"], ["min_loss"], ["min_loss"]]


def test_scrub_max_pass_raises_divergence_from_the_teacher(digits_refs):
    from ray_unlearn.methods.scrub import distill_divergence

    forget = digits_refs.splits.forget
    teacher = digits_refs.model("original", torch.device("cpu"))
    model, _ = run_method("scrub", digits_refs, msteps=1, epochs=1, lr=0.01, alpha=0.0)
    with torch.no_grad():
        d = distill_divergence(model.eval()(forget.x), teacher(forget.x), 4.0).item()
    assert d > 1e-3


def test_random_label_with_exclude_true_never_keeps_the_label():
    from ray_unlearn.methods.random_label import random_labels

    y = torch.arange(1000) % 10
    g = torch.Generator().manual_seed(0)
    assert not bool((random_labels(y, 10, True, g) == y).any())
    drawn = random_labels(y, 10, False, g)
    assert bool((drawn == y).any()), "without exclude_true the true label may come up"
    assert set(drawn.tolist()) == set(range(10))


def test_l1_sparse_ends_with_a_smaller_l1_norm_than_finetuning(digits_refs):
    from ray_unlearn.methods.l1_sparse import l1_norm

    sparse, _ = run_method("l1_sparse", digits_refs, gamma=1e-3, lr=0.01, epochs=3)
    ft, _ = run_method("finetune", digits_refs, lr=0.01, epochs=3)
    assert l1_norm(sparse).item() < l1_norm(ft).item()


def test_salun_mask_keeps_the_stated_fraction_and_frozen_weights_stay_bit_identical(digits_refs):
    from ray_unlearn.methods.saliency import SaliencyMask

    from .common import quick_params

    model, ctx = run_method("salun", digits_refs, mask_ratio=0.3, epochs=2)
    assert ctx.extras["mask_density"] == pytest.approx(0.3, abs=1e-3)
    original = digits_refs.model("original", torch.device("cpu"))
    assert quick_params("salun").batch_size == 256, "SalUn's official batch size"
    assert quick_params("amun").batch_size == 128 and quick_params("amun_salun").batch_size == 128, "AMUN's"
    mask = SaliencyMask(original, digits_refs.splits.forget, 0.3, 256)
    moved = 0
    for p_new, p_old, m in zip(model.parameters(), original.parameters(), mask.masks):
        frozen = m == 0
        assert torch.equal(p_new[frozen], p_old[frozen]), "m = 0 weights equal the original bit for bit"
        moved += int((p_new[~frozen] != p_old[~frozen]).sum())
    assert moved > 0


def test_amun_salun_freezes_the_non_salient_weights(digits_refs):
    from ray_unlearn.methods.saliency import SaliencyMask

    model, ctx = run_method("amun_salun", digits_refs, mask_ratio=0.5)
    original = digits_refs.model("original", torch.device("cpu"))
    mask = SaliencyMask(original, digits_refs.splits.forget, 0.5, 128)
    for p_new, p_old, m in zip(model.parameters(), original.parameters(), mask.masks):
        assert torch.equal(p_new[m == 0], p_old[m == 0])


def test_amun_without_retain_never_reads_the_retain_set(digits_refs):
    data = unlearn_data(digits_refs)
    poisoned = TensorSet(torch.full_like(data.retain.x, float("nan")), data.retain.y)
    clean, _ = run_method("amun_no_retain", digits_refs, data=data)
    dirty, _ = run_method("amun_no_retain", digits_refs, data=dataclasses.replace(data, retain=poisoned))
    assert state_equal(clean, dirty)


def test_retrain_starts_from_fresh_weights_and_never_reads_the_forget_set(digits_refs):
    data = unlearn_data(digits_refs)
    poisoned = TensorSet(torch.full_like(data.forget.x, float("nan")), data.forget.y)
    a, _ = run_method("retrain", digits_refs, data=dataclasses.replace(data, forget=poisoned), epochs=1)
    b, _ = run_method("retrain", digits_refs, data=data, epochs=1)
    assert state_equal(a, b)
    original = digits_refs.model("original", torch.device("cpu"))
    first = next(iter(original.parameters()))
    assert float((next(iter(a.parameters())) - first).abs().mean()) > 0.01, "weights re-initialised, not fine-tuned"
