"""What is specific to the I2I methods beside the contract every method keeps (tests/test_contract.py): their
declared search ranges, a budget spent in KR's ascent, fine-tuning that never reads the forget set."""

from __future__ import annotations

import dataclasses
import time

import pytest

from ray_unlearn.hparams import default_space
from ray_unlearn.i2i.catalog import CATALOG
from ray_unlearn.methods.base import Context

from .common import run_method, state_equal, with_nan

# docs/methods.md (i2i_kr, i2i_noise, i2i_finetune tables): (low, high, log) of each method's searched hyperparameters
RANGES = {
    "i2i_kr": {"lr": (1e-5, 1e-2, True), "max_steps": (50, 5000, True), "threshold_scale": (0.5, 3.0, False),
               "retain_lr": (1e-5, 1e-3, True), "retain_epochs": (1, 20, False)},
    "i2i_noise": {"alpha": (0.05, 1.0, True), "lr": (1e-5, 1e-3, True), "epochs": (1, 20, False)},
    "i2i_finetune": {"lr": (1e-5, 1e-3, True), "epochs": (1, 20, False)},
}


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_search_ranges_are_those_of_the_docs(name):
    space = default_space(CATALOG[name].Params)
    assert {k: (d.low, d.high, d.log) for k, d in space.items()} == RANGES[name]


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_respects_its_time_budget_also_inside_the_ascent(name, refs, data):
    seen = []
    ctx = Context(seed=0, budget_seconds=0.0, on_epoch=lambda e, m, logs: seen.append(e))
    start = time.perf_counter()
    run_method(name, refs, data, ctx=ctx, **({"max_steps": 5000} if name == "i2i_kr" else {"epochs": 20}))
    assert seen == [1] and "time budget" in ctx.stopped_reason
    if name == "i2i_kr":
        assert ctx.extras["phase2_epochs"] == 0.0 and ctx.extras["t_max_reached"] == 0.0
    assert time.perf_counter() - start < 30


def test_finetune_never_reads_the_forget_set(refs, data):
    a, _ = run_method("i2i_finetune", refs, data)
    b, _ = run_method("i2i_finetune", refs, dataclasses.replace(data, forget=dataclasses.replace(data.forget, x=with_nan(data.forget.x))))
    assert state_equal(a, b)
