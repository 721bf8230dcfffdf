"""i2i_kr: decoupling (phase 1) stops exactly at the divergence threshold or its step cap; knowledge
retention (phase 2) restores retain quality; each phase reads only its own set."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ray_unlearn.errors import MethodError
from ray_unlearn.i2i import I2IKRParams, decouple
from ray_unlearn.i2i.methods import frozen_copy, retain_error
from ray_unlearn.i2i.metrics import divergence
from ray_unlearn.methods.base import Context

from .common import quick_params, run_method, state_equal, with_nan

STRONG = {"threshold_scale": 3.0, "max_steps": 500, "retain_epochs": 5}  # c = 3: phase 1 takes ~25 steps here


def test_phase1_stops_at_the_first_step_whose_divergence_reaches_the_threshold(refs, data):
    torch.set_num_threads(1)
    model, original = frozen_copy(refs.original).train().requires_grad_(True), frozen_copy(refs.original)
    threshold = 3.0 * data.divergence_scale
    result = decouple(model, original, data.forget, threshold, I2IKRParams(), Context(seed=0))
    divs = result.divergences
    assert result.reached and not result.t_max_reached and 1 < result.steps < 500
    assert all(d < threshold for d in divs[:-1]) and divs[-1] >= threshold
    assert abs(divergence(model, original, data.forget.x) - divs[-1]) < 1e-5, "Div is mean ||f(τx) - f_o(τx)||_2 over D_f"


def test_phase1_stops_at_its_step_cap_and_flags_it(refs, data):
    _, ctx = run_method("i2i_kr", refs, data, threshold_scale=3.0, max_steps=3, lr=1e-5)
    assert ctx.extras["phase1_steps"] == 3 and ctx.extras["t_max_reached"] == 1.0 and ctx.extras["threshold_reached"] == 0.0
    assert ctx.extras["phase1_divergence"] < ctx.extras["phase1_threshold"] == pytest.approx(3.0 * data.divergence_scale)


def test_extras_record_the_phase1_status(refs, data):
    _, ctx = run_method("i2i_kr", refs, data, **STRONG)
    e = ctx.extras
    assert e["threshold_reached"] == 1.0 and e["t_max_reached"] == 0.0
    assert e["phase1_divergence"] >= e["phase1_threshold"] and 1 <= e["phase1_steps"] < 500
    assert 1 <= e["phase2_epochs"] <= 5


def test_kr_keeps_retain_error_near_the_original_while_forget_divergence_rises_toward_retrain(refs, data):
    kr, _ = run_method("i2i_kr", refs, data, **STRONG)
    ft, _ = run_method("i2i_finetune", refs, data, epochs=5)
    retain, forget = data.retain.x, data.forget.x
    assert retain_error(kr, retain) <= 1.10 * retain_error(refs.original, retain), "stated margin: 10 %"
    kr_forget, kr_retain = divergence(kr, refs.original, forget), divergence(kr, refs.original, retain)
    retrain_forget = divergence(refs.retrain, refs.original, forget)
    assert kr_forget > 2 * kr_retain, "the change is aimed at D_f"
    assert kr_forget > 2 * divergence(ft, refs.original, forget), "more than fine-tuning alone moves D_f"
    assert 0.15 * retrain_forget < kr_forget < retrain_forget


def test_phase1_reads_only_the_forget_set_and_phase2_only_the_retain_set(refs, data):
    """Poison the other phase's set with NaNs (swapped in place at the phase boundary): results are identical."""
    clean, _ = run_method("i2i_kr", refs, data, seed=1, **STRONG)
    hp = quick_params("i2i_kr", **STRONG)

    def run_with_swap(poisoned: str) -> torch.nn.Module:
        swapped = []
        copy = dataclasses.replace(data, forget=dataclasses.replace(data.forget, x=data.forget.x.clone()),
                                   retain=dataclasses.replace(data.retain, x=data.retain.x.clone()))
        if poisoned == "retain":  # NaN retain during phase 1, real retain from the phase-1 end on
            copy.retain.x.copy_(with_nan(copy.retain.x))

        def at_boundary(epoch, model, logs):
            end = logs.get("phase") == 1.0 and (logs["divergence"] >= logs["threshold"] or logs["step"] == hp.max_steps)
            if end and poisoned == "retain":
                copy.retain.x.copy_(data.retain.x)
            if end and poisoned == "forget":
                copy.forget.x.copy_(with_nan(copy.forget.x))
            swapped.append(end)

        model, _ = run_method("i2i_kr", refs, copy, seed=1, ctx=Context(seed=1, on_epoch=at_boundary), **STRONG)
        assert sum(swapped) == 1, "exactly one phase-1 end report"
        return model

    assert state_equal(run_with_swap("retain"), clean)
    assert state_equal(run_with_swap("forget"), clean)


def test_kr_needs_the_divergence_scale_from_its_caller(refs, data):
    with pytest.raises(MethodError, match="divergence_scale"):
        run_method("i2i_kr", refs, dataclasses.replace(data, divergence_scale=None))
