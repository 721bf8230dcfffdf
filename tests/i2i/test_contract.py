"""The contract every registered I2I method passes (one suite over the registry)."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from ray_unlearn.errors import ConfigError, MethodError
from ray_unlearn.hparams import default_space
from ray_unlearn.i2i import I2I_METHODS
from ray_unlearn.methods.base import Context

from .common import quick_params, run_method, state_equal, with_nan

ALL = sorted(I2I_METHODS)

# docs/methods.md (i2i_kr, i2i_noise, i2i_finetune tables): (low, high, log) of each method's searched hyperparameters
RANGES = {
    "i2i_kr": {"lr": (1e-5, 1e-2, True), "max_steps": (50, 5000, True), "threshold_scale": (0.5, 3.0, False),
               "retain_lr": (1e-5, 1e-3, True), "retain_epochs": (1, 20, False)},
    "i2i_noise": {"alpha": (0.05, 1.0, True), "lr": (1e-5, 1e-3, True), "epochs": (1, 20, False)},
    "i2i_finetune": {"lr": (1e-5, 1e-3, True), "epochs": (1, 20, False)},
}


@pytest.mark.parametrize("name", ALL)
def test_search_ranges_are_those_of_methods_md(name):
    space = default_space(I2I_METHODS[name].Params)
    assert {k: (d.low, d.high, d.log) for k, d in space.items()} == RANGES[name]


@pytest.mark.parametrize("name", ALL)
def test_does_not_modify_the_original_and_changes_the_copy(name, refs, data):
    before = {k: v.clone() for k, v in refs.original.state_dict().items()}
    model, _ = run_method(name, refs, data)
    assert all(torch.equal(before[k], v) for k, v in refs.original.state_dict().items())
    assert not state_equal(model, refs.original)


@pytest.mark.parametrize("name", ALL)
def test_deterministic_for_a_fixed_seed(name, refs, data):
    a, _ = run_method(name, refs, data, seed=3)
    b, _ = run_method(name, refs, data, seed=3)
    assert state_equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_reports_consecutive_float_progress(name, refs, data):
    seen = []
    run_method(name, refs, data, ctx=Context(seed=0, on_epoch=lambda e, m, logs: seen.append((e, dict(logs)))))
    assert len(seen) >= 1 and [e for e, _ in seen] == list(range(1, len(seen) + 1))
    assert all(isinstance(v, float) for _, logs in seen for v in logs.values())


@pytest.mark.parametrize("name", ALL)
def test_respects_its_time_budget(name, refs, data):
    seen = []
    ctx = Context(seed=0, budget_seconds=0.0, on_epoch=lambda e, m, logs: seen.append(e))
    start = time.perf_counter()
    run_method(name, refs, data, ctx=ctx, **({"max_steps": 5000} if name == "i2i_kr" else {"epochs": 20}))
    assert seen == [1] and "time budget" in ctx.stopped_reason
    if name == "i2i_kr":
        assert ctx.extras["phase2_epochs"] == 0.0 and ctx.extras["t_max_reached"] == 0.0
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("name", ALL)
def test_stops_when_the_scheduler_says_so(name, refs, data):
    seen = []
    ctx = Context(seed=0, on_epoch=lambda e, m, logs: seen.append(e) or False)
    run_method(name, refs, data, ctx=ctx)
    assert seen == [1] and ctx.stopped_reason == "stopped by scheduler"


@pytest.mark.parametrize("name", ALL)
def test_empty_forget_set_and_bad_hyperparameters_are_clear_errors(name, refs, data):
    empty = dataclasses.replace(data.forget, x=data.forget.x[:0], y=data.forget.y[:0])
    with pytest.raises(MethodError, match="forget set is empty"):
        run_method(name, refs, dataclasses.replace(data, forget=empty))
    with pytest.raises(ConfigError, match=r"lr: -1.0 is out of range"):
        I2I_METHODS[name]().run(refs.original, data, dataclasses.replace(quick_params(name), lr=-1.0), Context())


def test_finetune_never_reads_the_forget_set(refs, data):
    a, _ = run_method("i2i_finetune", refs, data)
    b, _ = run_method("i2i_finetune", refs, dataclasses.replace(data, forget=dataclasses.replace(data.forget, x=with_nan(data.forget.x))))
    assert state_equal(a, b)
