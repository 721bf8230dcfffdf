"""Untargeted L2 PGD with per-sample epsilon doubling: AMUN's step A (METHODS.md §4).

For each sample, the nearest (on a doubling epsilon grid) input that the
model misclassifies, labelled with the wrong class the model predicts.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import TensorSet
from ..train import predict_logits


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

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor]) -> "AdversarialSet":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})

    def training_set(self) -> TensorSet:
        keep = self.found
        return TensorSet(self.x_adv[keep], self.y_adv[keep])


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


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
) -> AdversarialSet:
    """Run the attack on `model` in eval mode; `model` is not modified."""
    was_training = model.training
    model.eval()
    parts = [
        _attack_chunk(model, x[i : i + chunk], y[i : i + chunk], epsilon, steps, max_doublings, input_range)
        for i in range(0, len(x), chunk)
    ]
    model.train(was_training)
    out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    out["index"] = torch.arange(len(x), device=x.device)
    return AdversarialSet(**out)


# Without a declared input range nothing bounds a perturbation: a sample the model keeps classifying
# correctly would be pushed to radii of 1e5 and more, and training on such points diverges. There the
# radius may grow at most to this multiple of the sample's own norm (project choice; images clip instead).
MAX_RELATIVE_EPSILON = 1.0


def _attack_chunk(model, x, y, eps0, steps, max_doublings, input_range) -> dict[str, torch.Tensor]:
    n = len(x)
    pred0 = predict_logits(model, x).argmax(1)
    done = pred0 != y  # already misclassified: x_adv = x, y_adv = prediction
    limit = x.flatten(1).norm(dim=1) * MAX_RELATIVE_EPSILON if input_range is None else torch.full((n,), math.inf, device=x.device)
    x_adv = x.clone()
    y_adv = pred0.clone()
    eps = torch.full((n,), float(eps0), device=x.device)
    cur = x.clone()
    shape = (-1,) + (1,) * (x.dim() - 1)
    alive = ~done  # still searching: not yet misclassified and within the radius limit
    for _round in range(max_doublings + 1):
        for _step in range(steps):
            active = torch.nonzero(alive & ~done).flatten()
            if len(active) == 0:
                break
            xa = cur[active].detach().requires_grad_(True)
            loss = F.cross_entropy(model(xa), y[active], reduction="sum")  # per-sample gradients
            (g,) = torch.autograd.grad(loss, xa)
            e = eps[active].view(shape)
            xa = xa.detach() + (e / 10) * g / _flat_norm(g).clamp_min(1e-12)
            delta = xa - x[active]
            delta = delta * torch.clamp(e / _flat_norm(delta).clamp_min(1e-12), max=1.0)
            xa = x[active] + delta
            if input_range is not None:
                xa = xa.clamp(*input_range)
            cur[active] = xa
            with torch.no_grad():
                p = model(xa).argmax(1)
            flipped = p != y[active]
            hit = active[flipped]
            x_adv[hit] = xa[flipped]
            y_adv[hit] = p[flipped]
            done[hit] = True
        grow = alive & ~done & (eps * 2 <= limit)
        if not bool(grow.any()) or _round == max_doublings:
            break
        alive = grow
        eps = torch.where(grow, eps * 2, eps)  # still-correct samples continue from cur with 2 eps
    distance = (x_adv - x).flatten(1).norm(dim=1)
    return {
        "x_adv": x_adv,
        "y_adv": y_adv,
        "y": y.clone(),
        "original_pred": pred0,
        "epsilon": eps,
        "distance": distance,
        "found": done.clone(),
    }
