"""I2I unlearning methods (docs/methods.md#image-to-image-methods), under a contract that mirrors methods/base.py.

An `I2IMethod` has a `name`, a `Params` dataclass declared with `hp(...)`
and `unlearn(model, data, hp, ctx) -> model`. `run` validates, copies the
original and calls `unlearn`, so the original is never modified. A method
reads `data.forget`, `data.retain` and the caller's `data.divergence_scale`,
never validation or test images; it reports progress through
`ctx.report`, stops when that returns False, and is deterministic for a
fixed `ctx.seed` on CPU. `Context` is the classification methods' own.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..data.base import TensorSet
from ..errors import MethodError
from ..methods.base import Context, Method
from ..train import OptimSpec, batches, fit, make_optimizer, train_epoch
from .data import I2IData
from .metrics import reconstruct
from .models import corrupt
from .params import I2IFineTuneParams, I2IKRParams, I2INoiseParams
from .references import reconstruction_loss

GRAD_CLIP_NORM = 1.0  # phase-1 gradient-norm clip (docs/methods.md#i2i_kr)
REPORT_EVERY = 50  # phase-1 steps between progress reports (each report may evaluate the model)


def adam(lr: float) -> OptimSpec:
    return OptimSpec(lr=lr, optimizer="adam", weight_decay=0.0)


def retain_error(model: nn.Module, x: torch.Tensor) -> float:
    """Full-image MSE of f(τ(x)) against x in eval mode: the training loss, measured."""
    return ((reconstruct(model, x) - x) ** 2).mean().item()


class I2IMethod(Method):
    """Base class of every I2I unlearning method: the classification contract (`Method.run` validates,
    copies the original, unlearns), with `I2IData` in place of `UnlearnData`."""

    task = "i2i"

    @abc.abstractmethod
    def unlearn(self, model: nn.Module, data: I2IData, hp: Any, ctx: Context) -> nn.Module:
        """Unlearn `data.forget` from `model` (already a copy of the original) and return it."""


def frozen_copy(model: nn.Module) -> nn.Module:
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


# ---------------------------------------------------------------- fine-tune
class I2IFineTune(I2IMethod):
    name = "i2i_finetune"

    def unlearn(self, model: nn.Module, data: I2IData, hp: I2IFineTuneParams, ctx: Context) -> nn.Module:
        retain = data.retain
        fit(model, lambda: batches(retain, hp.batch_size, ctx.generator), adam(hp.lr), epochs=hp.epochs,
            loss_fn=reconstruction_loss, on_epoch=ctx.epoch_hook(model))
        return model


# ---------------------------------------------------------------- Gaussian-noise baseline
def noise_objective(model: nn.Module, original: nn.Module, x_r: torch.Tensor, x_f: torch.Tensor, noise: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(retain term, forget term): E||E(τ(x_r)) - E_0(τ(x_r))||_2 and E||E(τ(x_f)) - E_0(τ(n))||_2."""
    with torch.no_grad():
        keep, away = original.encode(corrupt(x_r)[0]), original.encode(corrupt(noise)[0])
    retain_term = (model.encode(corrupt(x_r)[0]) - keep).norm(dim=1).mean()
    forget_term = (model.encode(corrupt(x_f)[0]) - away).norm(dim=1).mean()
    return retain_term, alpha * forget_term


class I2INoise(I2IMethod):
    name = "i2i_noise"

    def unlearn(self, model: nn.Module, data: I2IData, hp: I2INoiseParams, ctx: Context) -> nn.Module:
        original = frozen_copy(model)
        model.decoder.requires_grad_(False)
        forget, retain = data.forget, data.retain

        def pairs() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # each retain batch with the next forget batch
            cycled = itertools.chain.from_iterable(batches(forget, hp.batch_size, ctx.generator) for _ in itertools.count())
            for (x_r, _), (x_f, _) in zip(batches(retain, hp.batch_size, ctx.generator), cycled):
                yield x_r, x_f

        def loss(model: nn.Module, x_r: torch.Tensor, x_f: torch.Tensor) -> torch.Tensor:
            noise = torch.randn(x_f.shape, generator=ctx.generator).to(x_f.device)  # redrawn every step
            retain_term, forget_term = noise_objective(model, original, x_r, x_f, noise, hp.alpha)
            return retain_term + forget_term

        fit(model, pairs, adam(hp.lr), epochs=hp.epochs, loss_fn=loss, params=list(model.encoder.parameters()),
            on_epoch=ctx.epoch_hook(model))
        model.decoder.requires_grad_(True)  # weights untouched; trainable again for whoever uses the model next
        return model


# ---------------------------------------------------------------- decoupling + knowledge retention
@dataclasses.dataclass
class Decoupling:
    """What phase 1 did: Div after every step, and why it stopped."""

    threshold: float
    max_steps: int
    divergences: list[float] = dataclasses.field(default_factory=list)
    stopped: bool = False  # ctx.report said stop (time budget or scheduler)

    @property
    def steps(self) -> int:
        return len(self.divergences)

    @property
    def reached(self) -> bool:
        return bool(self.divergences) and self.divergences[-1] >= self.threshold

    @property
    def t_max_reached(self) -> bool:
        return self.steps >= self.max_steps and not self.reached


def negative_reconstruction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-mean ||f(τ(x)) - x||² per image: bounded, since outputs are sigmoids in [0, 1]."""
    return -((model(corrupt(x)[0]) - x) ** 2).flatten(1).sum(1).mean()


@dataclasses.dataclass
class Reports:
    """Numbers the reports of consecutive phases 1, 2, 3, ... (ctx.report wants consecutive epochs)."""

    ctx: Context
    count: int = 0

    def __call__(self, model: nn.Module, **logs: float) -> bool:
        self.count += 1
        return self.ctx.report(self.count, model, **logs)


def decouple(model: nn.Module, original: nn.Module, forget: TensorSet, threshold: float, hp: I2IKRParams, ctx: Context,
             report: Reports | None = None) -> Decoupling:
    """Phase 1: gradient ascent on D_f until Div = mean ||f_θ(τ(x)) - f_θo(τ(x))||_2 >= λ, or T_max steps.

    Div is measured over all of D_f after every step; progress is reported
    every REPORT_EVERY steps and at the end. Reads D_f only.
    """
    report = report or Reports(ctx)
    result = Decoupling(threshold, hp.max_steps)
    reference = reconstruct(original, forget.x)

    def steps() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # forget batches until a stop rule fires
        while True:
            for batch in batches(forget, hp.batch_size, ctx.generator):
                if result.reached or result.stopped or result.steps >= hp.max_steps:
                    return
                yield batch

    def after_step() -> None:
        div = (reconstruct(model, forget.x) - reference).flatten(1).norm(dim=1).mean().item()
        result.divergences.append(div)
        last = result.reached or result.steps >= hp.max_steps
        if last or result.steps % REPORT_EVERY == 0 or ctx.out_of_time():
            logs = {"phase": 1.0, "step": float(result.steps), "divergence": div, "threshold": threshold}
            result.stopped = not report(model, **logs)

    optimizer = make_optimizer(model.parameters(), adam(hp.lr))
    train_epoch(model, steps(), negative_reconstruction, optimizer, grad_clip=GRAD_CLIP_NORM, after_step=after_step)
    return result


def retain_knowledge(model: nn.Module, original: nn.Module, retain: TensorSet, hp: I2IKRParams, ctx: Context,
                     report: Reports | None = None) -> list[float]:
    """Phase 2: the training loss on D_r for up to E epochs; stops once retain error <= (1 + tol) x θ_o's.

    Returns the retain-error ratio (to θ_o's) after each epoch. Reads D_r only.
    """
    report = report or Reports(ctx)
    target = retain_error(original, retain.x)
    ratios: list[float] = []

    def on_epoch(epoch: int, logs: dict) -> bool:
        ratios.append(retain_error(model, retain.x) / target)
        keep = report(model, phase=2.0, loss=logs["loss"], retain_error_ratio=ratios[-1])
        return keep and ratios[-1] > 1.0 + hp.retain_tolerance

    fit(model, lambda: batches(retain, hp.batch_size, ctx.generator), adam(hp.retain_lr), epochs=hp.retain_epochs,
        loss_fn=reconstruction_loss, on_epoch=on_epoch)
    return ratios


class I2IKR(I2IMethod):
    name = "i2i_kr"

    def unlearn(self, model: nn.Module, data: I2IData, hp: I2IKRParams, ctx: Context) -> nn.Module:
        scale = data.divergence_scale
        if scale is None or not scale > 0:
            raise MethodError(f"{self.name}: needs data.divergence_scale > 0 (the original's mean reconstruction error "
                              f"on held-out images, computed by the caller); got {scale}")
        original = frozen_copy(model)
        report = Reports(ctx)
        phase1 = decouple(model, original, data.forget, hp.threshold_scale * scale, hp, ctx, report)
        ctx.extras.update(
            phase1_steps=float(phase1.steps),
            phase1_divergence=phase1.divergences[-1],
            phase1_threshold=phase1.threshold,
            threshold_reached=float(phase1.reached),
            t_max_reached=float(phase1.t_max_reached),
        )
        if phase1.stopped:  # time budget or scheduler: ctx.stopped_reason says which
            ctx.extras["phase2_epochs"] = 0.0
            return model
        ratios = retain_knowledge(model, original, data.retain, hp, ctx, report)
        ctx.extras.update(phase2_epochs=float(len(ratios)), retain_error_ratio=ratios[-1])
        return model
