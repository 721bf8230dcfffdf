"""The original and retrain reference models of an experiment: trained once, cached, shared by every trial.

What they are and how they are trained is the experiment's task's (`Task.prepare`): a
classification task trains classifiers (tasks/classification/references.py), i2i autoencoders.
"""

from __future__ import annotations

from typing import Any, Callable

from .cache import Store
from .config import Experiment
from .tasks import get_task

Progress = Callable[[str, int, int, dict], None]  # (model name, epoch, epochs, logs)


def prepare(
    exp: Experiment, store: Store, device: Any, progress: Progress | None = None, splits: Any = None, runner: Any = None
) -> tuple[Any, list[str]]:
    """Load references from the store, training whatever is missing.

    Returns the references and the names of the models trained now (empty on
    a cache hit), so callers and tests can tell a hit from a rebuild. `runner`
    trains population models (`objective.population`): Ray tasks in a sweep.
    """
    return get_task(exp.task).prepare(exp, store, device, progress, splits, runner)


def reference_key(exp: Experiment, splits: Any) -> str:
    """The key `prepare` stores the references under: a hash of exactly the fields they depend on."""
    return get_task(exp.task).reference_key(exp, splits)
