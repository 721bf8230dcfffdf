"""The torch-free registries agree with what they declare: method entries with their Method classes,
dataset and arch declarations with their loaders and builders, every task with the contract."""

from __future__ import annotations

import dataclasses

import pytest

from ray_unlearn.registry import CATALOG
from ray_unlearn.tasks import TASKS, get_task
from ray_unlearn.tasks.base import Task


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_catalog_entry_agrees_with_its_method_class(name):
    """A built-in method is declared once (on its Params); its class names itself and reads the rest."""
    entry = CATALOG[name]
    cls = entry.load()
    assert cls.name == entry.name == name
    assert (cls.task, cls.Params, cls.uses_retain, cls.summary, cls.paper, dict(cls.quick)) == \
        (entry.task, entry.Params, entry.uses_retain, entry.summary, entry.paper, dict(entry.quick))
    assert dataclasses.is_dataclass(entry.Params) and entry.summary and entry.paper
    assert set(entry.quick) <= {f.name for f in dataclasses.fields(entry.Params)}, "quick names hyperparameters it has"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_each_task_fills_the_contract_and_owns_its_methods(task):
    t = get_task(task)
    assert isinstance(t, Task) and t.name == task
    assert t.methods and all(e.task == task for e in t.methods.values())
    assert t.retained and all(m in t.metric_directions for m in t.retained)
    assert t.forget_gap in t.metric_directions
    assert set(t.metric_directions.values()) <= {"max", "min"}


def test_dataset_and_arch_declarations_match_their_loaders_and_builders():
    from ray_unlearn.data import DATASETS
    from ray_unlearn.data.info import CATALOG as DATASET_INFOS
    from ray_unlearn.models import ARCHS
    from ray_unlearn.models.archs import CATALOG as ARCH_INFOS

    assert list(DATASETS) == list(DATASET_INFOS)
    assert all(callable(loader) for _, loader in DATASETS.values())
    assert {a: s for a, (_, s) in ARCHS.items()} == {a: s for a, (_, s) in ARCH_INFOS.items()}
