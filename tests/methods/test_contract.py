"""The contract every registered method passes (one suite over the registry, as Optuna does for samplers)."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from ray_unlearn.data.base import TensorSet
from ray_unlearn.errors import ConfigError, MethodError
from ray_unlearn.methods import METHODS, Context

from .common import quick_params, run_method, state_equal, unlearn_data

ALL = sorted(METHODS)


@pytest.mark.parametrize("name", ALL)
def test_returns_model_of_same_architecture(name, digits_refs):
    model, _ = run_method(name, digits_refs)
    original = digits_refs.model("original", torch.device("cpu"))
    assert type(model) is type(original)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in original.state_dict().items()}
    assert not state_equal(model, original), "the method changed nothing"


@pytest.mark.parametrize("name", ALL)
def test_does_not_modify_the_original(name, digits_refs):
    original = digits_refs.model("original", torch.device("cpu"))
    before = {k: v.clone() for k, v in original.state_dict().items()}
    METHODS[name]().run(original, unlearn_data(digits_refs), quick_params(name), Context(seed=0))
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())
    assert all(torch.equal(v, digits_refs.original_state[k]) for k, v in before.items())


@pytest.mark.parametrize("name", ALL)
def test_deterministic_for_a_fixed_seed(name, digits_refs):
    a, _ = run_method(name, digits_refs, seed=3)
    b, _ = run_method(name, digits_refs, seed=3)
    assert state_equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_reports_progress_every_epoch(name, digits_refs):
    seen = []
    ctx = Context(seed=0, on_epoch=lambda epoch, model, logs: seen.append((epoch, dict(logs))))
    METHODS[name]().run(digits_refs.model("original", torch.device("cpu")), unlearn_data(digits_refs), quick_params(name), ctx)
    assert [e for e, _ in seen] == list(range(1, len(seen) + 1)) and len(seen) >= 1
    assert all(isinstance(v, float) for _, logs in seen for v in logs.values())


@pytest.mark.parametrize("name", ALL)
def test_respects_its_time_budget(name, digits_refs):
    seen = []
    ctx = Context(seed=0, budget_seconds=0.0, on_epoch=lambda e, m, l: seen.append(e))
    start = time.perf_counter()
    METHODS[name]().run(digits_refs.model("original", torch.device("cpu")), unlearn_data(digits_refs), quick_params(name, epochs=50), ctx)
    assert seen == [1], "a spent budget stops the method after the epoch in progress"
    assert ctx.stopped_reason and "time budget" in ctx.stopped_reason
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("name", ALL)
def test_empty_forget_set_is_a_clear_error(name, digits_refs):
    data = unlearn_data(digits_refs)
    empty = TensorSet(data.forget.x[:0], data.forget.y[:0])
    with pytest.raises(MethodError, match="forget set is empty"):
        METHODS[name]().run(digits_refs.model("original", torch.device("cpu")), dataclasses.replace(data, forget=empty), quick_params(name), Context())


@pytest.mark.parametrize("name", ALL)
def test_out_of_range_hyperparameter_is_a_clear_error(name, digits_refs):
    hp = dataclasses.replace(quick_params(name), lr=-1.0)
    with pytest.raises(ConfigError, match=r"lr: -1.0 is out of range"):
        METHODS[name]().run(digits_refs.model("original", torch.device("cpu")), unlearn_data(digits_refs), hp, Context())
