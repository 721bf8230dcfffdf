"""One Tune trial: the plain-PyTorch trial (`trial.run_repeats`) with per-epoch reports to Tune."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from ray import tune

from ..config import Experiment
from ..objective import WORST_SCORE, targets
from ..tracking.vocabulary import INFO
from .cluster import trial_device

# Ray's own result keys: not metrics of ours, never logged to MLflow.
RAY_KEYS = {
    "training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "time_since_restore",
    "iterations_since_restore", "timesteps_total", "episodes_total", "timesteps_since_restore", "pid", "done",
    "node_ip", "hostname", "date", "trial_id", "experiment_tag", "config", "checkpoint_dir_name",
    "should_checkpoint", "experiment_id", "final",
}


# Per-trial facts reported beside the metrics: logged to MLflow as tags, not metrics.
INFO_KEYS = ("status", "message", *INFO)  # a result's keys that are not metrics


@dataclasses.dataclass(frozen=True)
class Shared:
    """An object-store reference that a trial resolves once per worker process (`resolve`).

    `tune.with_parameters` would hand every trial its own copy of the references, deserialised again
    in a reused actor (a CIFAR-10 split and two ResNet-18s: about a second per trial); this handle is
    what travels instead, and each worker keeps the one object it resolved."""

    ref: Any


_RESOLVED: dict[str, Any] = {}


def resolve(value: Any) -> Any:
    """`value`, or the object a `Shared` handle names (fetched once per worker process, the last one kept)."""
    if not isinstance(value, Shared):
        return value
    key = value.ref.hex()
    if key not in _RESOLVED:
        import ray

        _RESOLVED.clear()  # one sweep's references at a time
        _RESOLVED[key] = ray.get(value.ref)
    return _RESOLVED[key]


def _trainable(config: dict, *, exp: Experiment, refs: Any, cache_root: str) -> None:
    """One Tune trial: the plain-PyTorch trial with per-epoch reports to Tune.

    The trial's own files (final metrics, per-epoch history, optionally the
    unlearned weights) travel to the driver in its final Tune checkpoint.
    """
    import tempfile

    import ray
    import torch

    from ..cache import Store
    from ..trial import run_repeats, write_trial_files

    started = time.time()
    refs = resolve(refs)
    for noisy in ("ray.train", "ray.tune"):  # "Checkpoint successfully created" once per trial
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(max(1, int(exp.tune.resources.cpu)))  # one thread per small trial beats two
    device = trial_device(exp.tune.resources.gpu)
    history: list[dict] = []

    def report(metrics: dict) -> None:
        history.append(metrics)
        tune.report(metrics)

    result = run_repeats(exp, refs, config, device=device, report=report, memo=Store(cache_root).memo(refs.key))
    final = dict(result.metrics)
    for metric, direction in targets(exp.objective):  # a failed trial still reports every target
        final.setdefault(metric, WORST_SCORE if direction == "max" else -WORST_SCORE)
    info = {
        "status": result.status,
        "message": result.message,
        "device": str(device),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "node_id": ray.get_runtime_context().get_node_id(),
        "trial_started": started,
        "trial_finished": time.time(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        write_trial_files(tmp, result, history, info, save_model=exp.tracking.log_models)
        tune.report({**final, **info, "final": 1}, checkpoint=tune.Checkpoint.from_directory(tmp))
