"""The I2I original and retrain models (docs/references.md#image-to-image-references): trained once through train.fit, optionally cached.

The original learns to rebuild x from τ(x) on the whole train set (with the
backdoor planted in D_f, if any); the retrain model does the same on D_r
only. Same recipe, same seed: the retrain model is the target of every
I2I metric.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import Store, stable_hash
from ..data.base import Splits, TensorSet
from ..device import place_model
from ..train import OptimSpec, batches, fit
from .data import Backdoor, I2IData, poison_splits
from .metrics import evaluate_i2i, reconstruction_errors
from .models import build_autoencoder, corrupt

logger = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when training changes what a cached entry holds

DEFAULT_BACKDOOR = Backdoor()  # the §6 audit: half of D_f poisoned; pass None for a clean run
Progress = Callable[[str, int, int, dict], None]  # (model name, epoch, epochs, logs)


@dataclasses.dataclass(frozen=True)
class I2IRecipe:
    """Training of both references: full-image MSE from τ(x), Adam 1e-3, 100 epochs (docs/references.md#image-to-image-references)."""

    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0

    def optim(self) -> OptimSpec:
        return OptimSpec(lr=self.lr, optimizer="adam", weight_decay=0.0)


def reconstruction_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The original training loss: MSE over the full image of f(τ(x)) against x (labels unused)."""
    return F.mse_loss(model(corrupt(x)[0]), x)


def train_autoencoder(
    data: TensorSet, input_shape: tuple[int, ...], recipe: I2IRecipe, device: torch.device, on_epoch: Callable | None = None
) -> nn.Module:
    """A fresh `build_autoencoder(input_shape)` trained on `data` with `recipe`; returned in eval mode."""
    torch.manual_seed(recipe.seed)
    model = place_model(build_autoencoder(input_shape), device)
    gen = torch.Generator().manual_seed(recipe.seed)
    data = data.to(device)
    fit(model, lambda: batches(data, recipe.batch_size, gen), recipe.optim(), epochs=recipe.epochs,
        loss_fn=reconstruction_loss, on_epoch=on_epoch)
    return model.eval()


def divergence_scale(original: nn.Module, heldout: TensorSet) -> float:
    """e = mean ||f_θo(τ(x)) - x||_2 over held-out images: what `I2IData.divergence_scale` carries."""
    return reconstruction_errors(original, heldout.x).mean().item()


@dataclasses.dataclass
class I2IReferences:
    """The (possibly poisoned) split and both reference models."""

    splits: Splits  # train set holds the poisoned forget images when `backdoor` is set
    original: nn.Module
    retrain: nn.Module
    recipe: I2IRecipe
    backdoor: Backdoor | None = None
    poisoned_idx: torch.Tensor = dataclasses.field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # training time of each model (as first trained)
    trained: list[str] = dataclasses.field(default_factory=list)  # the models trained by this call (empty: loaded from the store)

    def method_data(self, heldout: str = "val") -> I2IData:
        """D_f, D_r and the divergence scale measured on `heldout` (the tuner's validation split by default)."""
        scale = divergence_scale(self.original, getattr(self.splits, heldout))
        return I2IData(forget=self.splits.forget, retain=self.splits.retain, divergence_scale=scale)

    def evaluate(self, model: nn.Module, heldout: str = "test", seed: int = 0) -> dict[str, float]:
        """`evaluate_i2i` against these references' split, original and backdoor."""
        return evaluate_i2i(model, self.splits, self.original, seed=seed, heldout=heldout, backdoor=self.backdoor,
                            poisoned_idx=self.poisoned_idx)


def i2i_reference_key(splits: Splits, recipe: I2IRecipe, backdoor: Backdoor | None) -> str:
    fields = {
        "version": CACHE_VERSION,
        "content": splits.fingerprint(),
        "recipe": dataclasses.asdict(recipe),
        "backdoor": dataclasses.asdict(backdoor) if backdoor else None,
    }
    return f"i2i-ref-{splits.info.name}-{stable_hash(fields)}"


def prepare_i2i(
    splits: Splits,
    recipe: I2IRecipe = I2IRecipe(),
    device: torch.device | str = "cpu",
    backdoor: Backdoor | None = DEFAULT_BACKDOOR,
    store: Store | None = None,
    progress: Progress | None = None,
) -> I2IReferences:
    """Poison D_f (if `backdoor`), then train or load the original (train set) and retrain (D_r) models."""
    device = torch.device(device)
    key = i2i_reference_key(splits, recipe, backdoor)
    poisoned_idx = torch.empty(0, dtype=torch.long)
    if backdoor is not None:
        splits, poisoned_idx = poison_splits(splits, backdoor)
    splits = splits.to(device)
    shape = tuple(splits.info.input_shape)
    names = ["original", "retrain"]
    models: dict[str, nn.Module] = {}
    seconds: dict[str, float] = {}

    def train_both() -> None:
        for name, data in (("original", splits.train), ("retrain", splits.retain)):
            hook = (lambda e, logs, n=name: progress(n, e, recipe.epochs, logs)) if progress else None
            start = time.perf_counter()
            models[name] = train_autoencoder(data, shape, recipe, device, hook)
            seconds[name] = time.perf_counter() - start

    def build() -> tuple[dict, dict]:
        train_both()
        tensors = {n: {k: v.detach().cpu() for k, v in m.state_dict().items()} for n, m in models.items()}
        return tensors, {"recipe": dataclasses.asdict(recipe), "poisoned_idx": poisoned_idx.tolist(), "seconds": seconds}

    trained: list[str] = names
    if store is None:
        train_both()
    else:  # built once under the store's lock; a corrupt entry is rebuilt, a concurrent builder's entry loaded
        entry = store.get_or_build(key, names, build)
        if entry.built:
            logger.info("I2I references %s stored in %s", key, store.entry(key))
        else:
            trained = []
            seconds = dict(entry.meta.get("seconds", {}))
            for name in names:
                models[name] = place_model(build_autoencoder(shape), device)
                models[name].load_state_dict(entry.tensors[name])
                models[name].eval()
    return I2IReferences(splits, models["original"], models["retrain"], recipe, backdoor, poisoned_idx, seconds, list(trained))
