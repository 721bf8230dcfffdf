"""Helpers shared by the method tests."""

from __future__ import annotations

import dataclasses

import torch

from ray_unlearn.methods import METHODS, Context, UnlearnData
from ray_unlearn.tasks.classification.references import References


def unlearn_data(refs: References) -> UnlearnData:
    s = refs.splits
    return UnlearnData(forget=s.forget, retain=s.retain, num_classes=s.info.num_classes, input_range=s.info.input_range)


def quick_params(name: str, **changes):
    """The method's defaults with a small budget: at most 2 epochs, cheap attacks."""
    params = METHODS[name].Params
    names = {f.name for f in dataclasses.fields(params)}
    small = {"epochs": 2, "steps": 10, "epsilon": 0.1}
    values = {k: v for k, v in small.items() if k in names}
    values.update(changes)
    from ray_unlearn.hparams import make_params

    return make_params(params, values)


def run_method(name: str, refs: References, seed: int = 0, data: UnlearnData | None = None, **changes):
    torch.set_num_threads(1)
    ctx = Context(seed=seed)
    model = METHODS[name]().run(refs.model("original", torch.device("cpu")), data or unlearn_data(refs), quick_params(name, **changes), ctx)
    return model, ctx


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
