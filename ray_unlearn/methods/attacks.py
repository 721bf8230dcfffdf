"""Untargeted L2 PGD with per-sample epsilon doubling: AMUN's step A (docs/methods.md#step-a-the-adversarial-set).

For each sample, the nearest (on a doubling epsilon grid) input that the
model misclassifies, labelled with the wrong class the model predicts.
Eval mode, exact float32 (`device.full_precision`: no autocast, no TF32, no cuDNN
autotuning for the shrinking batch), no random start.

Vanishing gradients (project choice, docs/methods.md#amun-deviations-and-choices): where the float32 CE
gradient at the iterate has ||g||_2 below VANISHING_GRAD_NORM (a saturated
softmax: p_y rounds to 1, so d CE / d logit_y is exactly 0), the normalised
step g / ||g|| is noise or undefined and PGD would never move; such a step goes
in a random unit direction of length a instead, drawn from a generator seeded
by `seed`, so the adversarial set stays a function of (model, inputs, eps0, S).
`random_steps` counts these steps per sample.

Deviation from AMUN's attack (docs/methods.md#amun-deviations-and-choices): without a declared input range the radius is
capped at MAX_RELATIVE_EPSILON * ||x|| (the paper's attack: no cap but the doubling
cap); uncapped, fine-tuning collapsed on MNIST-1D (figures at the constant).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import TensorSet
from ..device import full_precision
from ..train import predict_logits

# Below this, the float32 CE gradient of a saturated softmax carries no usable direction
# (MNIST-1D random 10 %: 29 of 360 forget samples at x, 4 of them exactly 0).
VANISHING_GRAD_NORM = 1e-12
ATTACK_SEED = 0  # default seed of the random-direction steps (D_A is shared: it must not depend on the trial)
# Deviation from AMUN's attack (docs/methods.md#amun-deviations-and-choices; no cap there other than the doubling cap):
# without a range the radius may grow at most to this multiple of the sample's own norm; a sample
# still correct there gets no twin. Measured on MNIST-1D random 10 % with the random-direction steps:
# uncapped, eps0 = 0.04 / S = 50 reaches ||x_adv - x|| = 3.1e4 (||x|| <= 10.5) and fine-tuning at the
# declared defaults (docs/methods.md#amun) collapses to chance (amun, amun_no_retain; amun_salun: NaN loss), and so does
# amun_no_retain / amun_salun at the YAML start point. Correctly classified forget samples left
# without a twin (of 360; eps0 0.207 / S 20, eps0 0.04 / S 50): cap 1: 20, 10; cap 4: 6, 4 (no
# collapse at the defaults either); before the random steps, cap 1: 30, 26. Images clip instead.
MAX_RELATIVE_EPSILON = 1.0


@dataclasses.dataclass
class AdversarialSet:
    """D_A plus what AMUN records per sample (row i belongs to forget sample `index[i]`)."""

    x_adv: torch.Tensor
    y_adv: torch.Tensor  # the wrong class the model predicts at x_adv
    y: torch.Tensor  # the true label
    original_pred: torch.Tensor
    epsilon: torch.Tensor  # final per-sample radius, eps0 * 2**k
    distance: torch.Tensor  # ||x_adv - x||_2
    index: torch.Tensor  # row in the forget set
    found: torch.Tensor  # False if still correct after the doubling cap (excluded from D_A)
    random_steps: torch.Tensor  # steps taken in a random direction because the gradient vanished

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor]) -> "AdversarialSet":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})

    def training_set(self) -> TensorSet:
        keep = self.found
        return TensorSet(self.x_adv[keep], self.y_adv[keep])


def pgd_l2_nearest(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    steps: int,
    max_doublings: int = 20,
    input_range: tuple[float, float] | None = (0.0, 1.0),
    chunk: int = 1024,
    seed: int = ATTACK_SEED,
) -> AdversarialSet:
    """Run the attack on `model` in eval mode and float32; `model` is not modified.

    `input_range`: clip iterates to it; None (e.g. MNIST-1D) = no clipping, radius at most
    MAX_RELATIVE_EPSILON * ||x|| (a documented deviation, see there). `seed` seeds the random-direction steps (one generator per chunk).
    """
    was_training = model.training
    model.eval()
    with full_precision(x.device):
        parts = [
            _attack_chunk(
                model, x[i : i + chunk], y[i : i + chunk], epsilon, steps, max_doublings, input_range,
                torch.Generator().manual_seed(seed + i),
            )
            for i in range(0, len(x), chunk)
        ]
    model.train(was_training)
    out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    out["index"] = torch.arange(len(x), device=x.device)
    return AdversarialSet(**out)


def _attack_chunk(model, x, y, eps0, steps, max_doublings, input_range, generator) -> dict[str, torch.Tensor]:
    n = len(x)
    shape = (-1,) + (1,) * (x.dim() - 1)
    pred0 = predict_logits(model, x).argmax(1)
    done = pred0 != y  # already misclassified: x_adv = x, y_adv = prediction
    x_adv = x.clone()
    y_adv = pred0.clone()
    eps = torch.full((n,), float(eps0), device=x.device)
    random_steps = torch.zeros(n, dtype=torch.long, device=x.device)
    limit = x.flatten(1).norm(dim=1) * MAX_RELATIVE_EPSILON if input_range is None else torch.full((n,), float("inf"), device=x.device)
    alive = ~done  # still searching: not yet misclassified and its radius may still grow
    cur = x.clone()
    for _round in range(max_doublings + 1):
        for _step in range(steps):
            active = torch.nonzero(alive & ~done).flatten()
            if len(active) == 0:
                break
            xa = cur[active].detach().requires_grad_(True)
            loss = F.cross_entropy(model(xa), y[active], reduction="sum")  # per-sample gradients
            (g,) = torch.autograd.grad(loss, xa)
            g_norm = _flat_norm(g)
            vanished = (g_norm.flatten() < VANISHING_GRAD_NORM) | ~torch.isfinite(g_norm.flatten())
            direction = g / g_norm.clamp_min(VANISHING_GRAD_NORM)
            n_vanished = int(vanished.sum())  # the step's one sync beside `active`: the CPU draws need the count
            if n_vanished:
                noise = torch.randn((n_vanished, *x.shape[1:]), generator=generator).to(x.device, x.dtype)
                direction[vanished] = noise / _flat_norm(noise)
                random_steps[active[vanished]] += 1
            e = eps[active].view(shape)
            xa = xa.detach() + (e / 10) * direction
            delta = xa - x[active]
            delta = delta * torch.clamp(e / _flat_norm(delta).clamp_min(1e-12), max=1.0)
            xa = x[active] + delta
            if input_range is not None:
                xa = xa.clamp(*input_range)
            cur[active] = xa
            with torch.no_grad():
                p = model(xa).argmax(1)
            flipped = p != y[active]  # selects, not boolean indexing: no sync to count the rows
            x_adv[active] = torch.where(flipped.view(shape), xa.detach(), x_adv[active])
            y_adv[active] = torch.where(flipped, p, y_adv[active])
            done[active] = flipped  # active rows were not done
        alive = alive & ~done & (eps * 2 <= limit)
        if not bool(alive.any()) or _round == max_doublings:
            break
        eps = torch.where(alive, eps * 2, eps)  # still-correct samples continue from cur with 2 eps, a = 2 eps / 10
    distance = (x_adv - x).flatten(1).norm(dim=1)
    return {
        "x_adv": x_adv,
        "y_adv": y_adv,
        "y": y.clone(),
        "original_pred": pred0,
        "epsilon": eps,
        "distance": distance,
        "found": done.clone(),
        "random_steps": random_steps,
    }


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))
