"""The method contract: a name, a hyperparameter dataclass, and `unlearn`.

A method gets a copy of the original model, the forget set and (unless it
declares `uses_retain = False`) the retain set, never validation or test
data; it reports per-epoch progress through `ctx` and is deterministic for a
fixed `ctx.seed` on CPU. Adding a method: its declaration (methods/params.py), its module, a YAML.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import time
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from ..data.base import TensorSet
from ..errors import MethodError
from ..hparams import make_params
from ..train import batches, fit
from .entry import DECLARED
from .params import SGDParams  # noqa: F401 - re-exported (and its declarations fill DECLARED)

EpochHook = Callable[[int, nn.Module, dict], "bool | None"]
Memo = Callable[[str, Mapping[str, Any], Callable[[], dict[str, torch.Tensor]]], dict[str, torch.Tensor]]


@dataclasses.dataclass
class UnlearnData:
    """What a method may read: the forget set and, if it uses one, the retain set."""

    forget: TensorSet
    retain: TensorSet | None
    num_classes: int
    input_range: tuple[float, float] | None  # attacks clip only to a declared range
    augment: str = "none"  # augmentation of real training samples (the reference recipe's)


def in_memory_memo() -> Memo:
    """A memo for notebook use: remembers results for the lifetime of the context."""
    store: dict[tuple, dict[str, torch.Tensor]] = {}

    def memo(name: str, key: Mapping[str, Any], compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        k = (name, tuple(sorted(key.items())))
        if k not in store:
            store[k] = compute()
        return store[k]

    return memo


@dataclasses.dataclass
class Context:
    """Run-time services a method gets: device, seed, progress hook, time budget, memo."""

    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    on_epoch: EpochHook | None = None
    budget_seconds: float | None = None
    # Results that depend only on (original model, forget set, given key) - e.g. AMUN's
    # adversarial set - computed once and shared by every trial (the trial passes a disk memo).
    memo: Memo = dataclasses.field(default_factory=in_memory_memo)
    stopped_reason: str | None = None
    # Figures a method wants recorded beside the metrics (e.g. AMUN's mean final epsilon).
    extras: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)
        self.started = time.monotonic()

    def out_of_time(self) -> bool:
        return self.budget_seconds is not None and time.monotonic() - self.started > self.budget_seconds

    def report(self, epoch: int, model: nn.Module, **logs: float) -> bool:
        """Per-epoch progress; False tells the method to stop (time budget or scheduler)."""
        if self.on_epoch is not None and self.on_epoch(epoch, model, logs) is False:
            self.stopped_reason = self.stopped_reason or "stopped by scheduler"
            return False
        if self.out_of_time():
            self.stopped_reason = f"time budget of {self.budget_seconds:g} s reached after epoch {epoch}"
            return False
        return True

    def epoch_hook(self, model: nn.Module) -> Callable[[int, dict], bool]:
        """Adapter for `train.fit(on_epoch=...)`."""
        return lambda epoch, logs: self.report(epoch, model, **logs)

    def fit(
        self, model: nn.Module, source: TensorSet | Callable, hp: Any, *, spec: Any = None, augment: str = "none", **fit_kwargs: Any
    ) -> list[float]:
        """`hp.epochs` passes of `spec` (default `hp.optim(hp.lr)`) over `source`, each epoch reported here.

        `source` is a TensorSet, shuffled into `hp.batch_size` batches by this context's generator, or a
        batch factory; `fit_kwargs` go to `train.fit` (loss_fn, optimizer, hooks, ...)."""
        if isinstance(source, TensorSet):
            data = source
            source = lambda: batches(data, hp.batch_size, self.generator, augment=augment)  # noqa: E731
        return fit(model, source, spec or hp.optim(hp.lr), epochs=hp.epochs, on_epoch=self.epoch_hook(model), **fit_kwargs)


class Method(abc.ABC):
    """Base class of every unlearning method.

    A built-in method names itself (`name`); the rest comes from its declaration (`entry.method` on
    its Params). A plugin's method declares it all on the class."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for `ray-unlearn methods`
    paper: ClassVar[str]
    Params: ClassVar[type]
    uses_retain: ClassVar[bool] = True
    task: ClassVar[str] = "classification"  # or "i2i": which experiments the method serves
    quick: ClassVar[Mapping[str, Any]] = {}  # hyperparameters that make a test run cheap (ray_unlearn.testing)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        entry = DECLARED.get(cls.__dict__.get("name", ""))
        if entry is not None:
            for attr in ("task", "Params", "summary", "paper", "uses_retain", "quick"):
                if attr not in cls.__dict__:
                    setattr(cls, attr, getattr(entry, attr))

    @abc.abstractmethod
    def unlearn(self, model: nn.Module, data: UnlearnData, hp: Any, ctx: Context) -> nn.Module:
        """Unlearn `data.forget` from `model` (already a copy of the original) and return it."""

    def run(self, original: nn.Module, data: UnlearnData, hp: Any, ctx: Context) -> nn.Module:
        """Validate, copy the original, unlearn. The original is never modified."""
        make_params(self.Params, dataclasses.asdict(hp), path=f"{self.name}")  # range checks
        if len(data.forget) == 0:
            raise MethodError(f"{self.name}: the forget set is empty; nothing to unlearn")
        if not self.uses_retain:
            data = dataclasses.replace(data, retain=None)
        elif data.retain is None or len(data.retain) == 0:
            raise MethodError(f"{self.name}: needs a non-empty retain set")
        torch.manual_seed(ctx.seed)
        model = copy.deepcopy(original)
        model.train()
        return self.unlearn(model, data, hp, ctx)
