"""The method contract as a function a plugin author can run: `check_method(MyMethod)`.

The contract, written once: tests/test_contract.py runs it on every registered method of every task,
on its task's small real problem (`Task.contract_problem`: digits, one class forgotten, a SmallCNN or
a masked autoencoder trained briefly, CPU). The method returns a
changed model of the same architecture, never modifies the original, is deterministic for a seed,
reports progress every epoch, stops when its time budget is spent, rejects an empty forget set and
(where it has one) an out-of-range learning rate, and runs without the retain set when it says it
does not read one. Each failure is an AssertionError saying which property and why.

    from ray_unlearn.testing import check_method
    check_method(MyMethod)                       # in the plugin's own test suite
    check_method(MyMethod, epochs=1, lr=0.05)    # hyperparameters for a quick run
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .data.base import TensorSet
from .errors import ConfigError, MethodError
from .hparams import make_params
from .methods.base import Context, Method
from .tasks import get_task


def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def check_method(method_cls: type[Method], **hyperparameters: Any) -> None:
    """Assert the Method contract for `method_cls` with its defaults, its declared `quick` settings (what
    makes a test run cheap: few epochs, a cheap attack) and `hyperparameters`."""
    torch.set_num_threads(1)
    names = {f.name for f in dataclasses.fields(method_cls.Params)}
    hp = make_params(method_cls.Params, {**getattr(method_cls, "quick", {}), **hyperparameters}, path=method_cls.name)
    fresh_original, data = get_task(getattr(method_cls, "task", "classification")).contract_problem()
    name = method_cls.name

    original = fresh_original()
    before = {k: v.clone() for k, v in original.state_dict().items()}
    seen: list[tuple[int, dict]] = []
    ctx = Context(seed=3, on_epoch=lambda epoch, model, logs: seen.append((epoch, dict(logs))))
    out = method_cls().run(original, data, hp, ctx)
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items()), f"{name} modified the original model"
    assert type(out) is type(original), f"{name} returned a {type(out).__name__}, not the original's architecture"
    assert {k: v.shape for k, v in out.state_dict().items()} == {k: v.shape for k, v in original.state_dict().items()}, \
        f"{name} returned weights of other shapes"
    assert not _state_equal(out, original), f"{name} changed nothing"
    assert all(bool(torch.isfinite(v).all()) for v in out.state_dict().values() if v.is_floating_point()), \
        f"{name} left non-finite weights"
    assert seen and [e for e, _ in seen] == list(range(1, len(seen) + 1)), \
        f"{name} must call ctx.report(epoch, model, **logs) after every epoch, 1, 2, ... (saw epochs {[e for e, _ in seen]})"
    assert all(isinstance(v, float) for _, logs in seen for v in logs.values()), f"{name}: per-epoch logs must be floats"

    again = method_cls().run(fresh_original(), data, hp, Context(seed=3))
    assert _state_equal(out, again), f"{name} is not deterministic for a fixed ctx.seed (use ctx.generator / ctx.seed)"

    stops: list[int] = []
    budget = Context(seed=0, budget_seconds=0.0, on_epoch=lambda e, m, l: stops.append(e))
    if "epochs" in names:
        method_cls().run(fresh_original(), data, dataclasses.replace(hp, epochs=max(hp.epochs, 5)), budget)
        assert stops == [1], f"{name} must stop after the epoch in progress once ctx.report returns False (saw {stops})"

    empty = dataclasses.replace(data, forget=TensorSet(data.forget.x[:0], data.forget.y[:0]))
    try:
        method_cls().run(fresh_original(), empty, hp, Context())
    except MethodError:
        pass
    else:
        raise AssertionError(f"{name} accepted an empty forget set")

    if "lr" in names:
        try:
            method_cls().run(fresh_original(), data, dataclasses.replace(hp, lr=-1.0), Context())
        except ConfigError:
            pass
        else:
            raise AssertionError(f"{name} accepted lr = -1: declare its range with hp(..., gt=0.0)")

    if not method_cls.uses_retain:
        method_cls().run(fresh_original(), dataclasses.replace(data, retain=None), hp, Context())
