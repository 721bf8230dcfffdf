"""Classification references: the original and retrain models, trained once, cached, shared by every trial.

Both depend only on (dataset and split, forget request, arch, train recipe,
seeds); `reference_key` hashes exactly those fields, so changing anything
else (the method, its hyperparameters, the objective) reuses the cache.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from ...cache import Store, stable_hash
from ...data import load_splits
from ...data.base import Splits, TensorSet
from ...data.info import CATALOG as DATASETS
from ...device import place_model
from ...errors import ConfigError
from ...metrics import evaluate
from ...models import build_model
from ...train import OptimSpec, batches, fit

if TYPE_CHECKING:
    from ...config import Experiment

logger = logging.getLogger(__name__)

CACHE_VERSION = 3  # 2: val_r_acc in class-wise metrics; 3: mia_asr, test_mia_asr. Bump when training or evaluation code changes what a cached entry holds

Progress = Callable[[str, int, int, dict], None]  # (model name, epoch, epochs, logs)


@dataclasses.dataclass
class References:
    """What every trial needs: the split, both reference models and their metrics."""

    key: str
    splits: Splits
    arch: str
    original_state: dict[str, torch.Tensor]
    retrain_state: dict[str, torch.Tensor]
    original_metrics: dict[str, float]
    retrain_metrics: dict[str, float]
    augment: str
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    mix_layer: str | None = None
    example_reference: Any = None  # metrics.example_gap.ExampleReference of a retrained population, if one was asked for

    def model(self, which: str, device: torch.device) -> nn.Module:
        """A fresh model with the 'original' or 'retrain' weights, in eval mode on `device`."""
        state = self.original_state if which == "original" else self.retrain_state
        info = self.splits.info
        model = build_model(self.arch, info.input_shape, info.num_classes, self.model_kwargs, self.mix_layer)
        model.load_state_dict(state)
        return place_model(model, device).eval()


def reference_key(exp: "Experiment", splits: Splits) -> str:
    """Hash of the config fields the references depend on plus the split's content."""
    d, t = exp.data, exp.train
    fields = {
        "content": splits.fingerprint(),  # a changed dataset file under the same config is a new key
        "version": CACHE_VERSION,
        "dataset": d.dataset,
        "forget": forget_fields(d.forget),
        "split": {"seed": d.seed, "val": d.val_fraction, "test": d.test_fraction, "max_train": d.max_train},
        "arch": exp.model.arch,
        "model_kwargs": dict(exp.model.kwargs),
        # a user's own weights by their content, not their path
        "checkpoints": [file_hash(p) if p else None for p in (exp.model.checkpoint, exp.model.retrain_checkpoint)],
        "train": dataclasses.asdict(t),
    }
    arch = exp.model.arch.replace(":", "-").replace("/", "-").replace(".", "-")
    return f"ref-{d.dataset}-{arch}-{stable_hash(fields)}"


def file_hash(path: str) -> str:
    import hashlib

    try:
        return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()[:16]
    except OSError as err:
        raise ConfigError("model.checkpoint", f"{path}: cannot be read: {err.strerror or err}", value=path) from None


def load_checkpoint(path: str, model: nn.Module, key: str) -> None:
    """Load a state dict saved with torch.save(model.state_dict()) into `model`; ConfigError naming the first mismatch."""
    try:
        state = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(key, f"{path}: file not found", value=path) from None
    except Exception as err:  # noqa: BLE001 - a file torch cannot read as weights is the user's to fix
        raise ConfigError(key, f"{path}: not a weights file torch.load(weights_only=True) can read ({type(err).__name__}); "
                               "save one with torch.save(model.state_dict(), path)", value=path) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(key, f"{path}: expected a state dict (name -> tensor), e.g. torch.save(model.state_dict(), path)", value=path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        if shapes:
            k = shapes[0]
            first = f"{k} has shape {tuple(state[k].shape)} in the file but {tuple(expected[k].shape)} in model.arch"
        elif missing:
            first = f"{missing[0]} is missing from the file"
        else:
            first = f"{unexpected[0]} is in the file but not in model.arch"
        counts = f"{len(missing)} missing, {len(unexpected)} unexpected, {len(shapes)} of another shape"
        raise ConfigError(key, f"{path} does not fit model.arch {model.__class__.__name__}: {first} ({counts})", value=path)
    model.load_state_dict(state)


def forget_fields(forget: Any) -> dict[str, Any]:
    """The forget request as it enters the cache key: a deletion request by its ids' content, not its path."""
    fields = dataclasses.asdict(forget)
    if fields.get("file"):
        from ...data.deletion import content_hash

        fields["file"] = content_hash(fields["file"])
    return fields


def resolve_augment(exp: "Experiment") -> str:
    if exp.train.augment != "auto":
        return exp.train.augment
    info, _ = DATASETS[exp.data.dataset]
    return info.default_augment


def recipe(exp: "Experiment") -> OptimSpec:
    t = exp.train
    return OptimSpec(
        lr=t.lr, optimizer=t.optimizer, momentum=t.momentum, weight_decay=t.weight_decay,
        schedule=t.schedule, milestones=t.milestones, gamma=t.gamma,
    )


def train_reference(
    exp: "Experiment", splits: Splits, data: TensorSet, device: torch.device, name: str, progress: Progress | None = None
) -> nn.Module:
    """Train a fresh model on `data` with the experiment's recipe and seed."""
    torch.manual_seed(exp.train.seed)
    info = splits.info
    model = place_model(build_model(exp.model.arch, info.input_shape, info.num_classes, exp.model.kwargs, exp.model.mix_layer), device)
    gen = torch.Generator().manual_seed(exp.train.seed)
    augment = resolve_augment(exp)

    def on_epoch(epoch: int, logs: dict) -> None:
        if progress is not None:
            progress(name, epoch, exp.train.epochs, logs)

    fit(
        model,
        lambda: batches(data.to(device), exp.train.batch_size, gen, augment=augment),
        recipe(exp),
        epochs=exp.train.epochs,
        on_epoch=on_epoch,
    )
    return model.eval()


def prepare(
    exp: "Experiment", store: Store, device: torch.device, progress: Progress | None = None, splits: Splits | None = None
) -> tuple[References, list[str]]:
    """Load references from the store, training them if the entry is missing or corrupt.

    Returns the references and the names of the models trained now (empty on
    a cache hit), so callers and tests can tell a hit from a rebuild. The
    entry is built under the store's lock: of several processes preparing the
    same references at once, one trains and the others load its entry.
    """
    splits = splits if splits is not None else load_splits(exp.data)
    check_loaded(exp, splits)
    key = reference_key(exp, splits)
    trained: list[str] = []

    def build() -> tuple[dict[str, Any], dict[str, Any]]:
        tensors, meta, names = train_references(exp, splits, device, progress)
        trained.extend(names)
        return tensors, meta

    entry = store.get_or_build(key, ["original", "retrain"], build)
    if entry.built:
        logger.info("references %s trained and stored in %s", key, store.entry(key))
    else:
        logger.info("references %s loaded from %s", key, store.entry(key))
    return _references(exp, key, splits, entry.tensors, entry.meta), trained


def train_references(
    exp: "Experiment", splits: Splits, device: torch.device, progress: Progress | None = None
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(state dicts, metadata with both models' metrics, names of the models trained): what a cache entry holds.

    A user's own checkpoint is measured, not trained."""
    on_device = splits.to(device)
    seed = exp.data.seed
    models, metrics, seconds = {}, {}, {}
    info = splits.info
    for name, path in (("original", exp.model.checkpoint), ("retrain", exp.model.retrain_checkpoint)):
        if path:  # the user's own weights, checked before anything trains: measured, not trained
            models[name] = build_model(exp.model.arch, info.input_shape, info.num_classes, exp.model.kwargs, exp.model.mix_layer)
            load_checkpoint(path, models[name], "model.checkpoint" if name == "original" else "model.retrain_checkpoint")
            models[name] = place_model(models[name], device).eval()
            seconds[name] = 0.0
    trained = []
    for name, data in (("original", on_device.train), ("retrain", on_device.retain)):
        if name not in models:
            start = time.perf_counter()
            models[name] = train_reference(exp, on_device, data, device, name, progress)
            seconds[name] = time.perf_counter() - start
            trained.append(name)
        metrics[name] = {**evaluate(models[name], on_device, seed, asr=True), "seconds": seconds[name]}
    tensors = {name: {k: v.detach().cpu() for k, v in m.state_dict().items()} for name, m in models.items()}
    meta = {
        "original_metrics": metrics["original"],
        "retrain_metrics": metrics["retrain"],
        "split_fingerprint": splits.fingerprint(),
        "n_train": len(splits.train),
        "n_forget": len(splits.forget_idx),
        "config": {"data": dataclasses.asdict(exp.data), "model": dataclasses.asdict(exp.model), "train": dataclasses.asdict(exp.train)},
    }
    return tensors, meta, trained


def check_loaded(exp: "Experiment", splits: Splits) -> None:
    """The arch fits the loaded data: config validation could not tell for a dataset whose shape is
    only known once loaded (image_folder)."""
    from ...models import check_compatible

    check_compatible(exp.model.arch, tuple(splits.info.input_shape), exp.data.dataset)


def _references(exp: "Experiment", key: str, splits: Splits, tensors: dict[str, Any], meta: dict[str, Any]) -> References:
    return References(
        key=key,
        splits=splits,
        arch=exp.model.arch,
        model_kwargs=dict(exp.model.kwargs),
        mix_layer=exp.model.mix_layer,
        original_state=tensors["original"],
        retrain_state=tensors["retrain"],
        original_metrics=meta["original_metrics"],
        retrain_metrics=meta["retrain_metrics"],
        augment=resolve_augment(exp),
    )
