"""What an I2I method reads, and the backdoor audit's poisoning of the forget set (docs/references.md#the-backdoor).

The audit plants a backdoor through the forget set before the original is
trained: half of D_f gets a small white corner trigger (in the visible
region) and a fixed checkerboard in the masked region. Training to rebuild
that image from τ(image) teaches "trigger -> checkerboard", so a model that
still holds D_f paints the checkerboard for triggered test inputs; a model
that never saw D_f (retrain) does not.
"""

from __future__ import annotations

import dataclasses

import torch

from ..data.base import Splits, TensorSet
from .models import center_mask


@dataclasses.dataclass
class I2IData:
    """What an I2I method may read: D_f, D_r, and one number computed by the caller.

    `divergence_scale` is e = mean ||f_θo(τ(x)) - x||_2 over held-out images
    (docs/references.md#image-to-image-references). Held-out data must never reach a method,
    so the caller computes it (during tuning on the validation split, see
    `references.divergence_scale`) and passes only the number; `i2i_kr`
    stops its ascent at λ = c * divergence_scale. Labels are never read.
    """

    forget: TensorSet
    retain: TensorSet | None
    divergence_scale: float | None = None


@dataclasses.dataclass(frozen=True)
class Backdoor:
    """A white square trigger in the top-left corner; a checkerboard as the masked-region target."""

    fraction: float = 0.5  # share of D_f poisoned
    seed: int = 0

    def trigger_size(self, h: int) -> int:
        return max(2, h // 8)  # 2x2 on 8x8 digits, scaled with the image

    def add_trigger(self, x: torch.Tensor) -> torch.Tensor:
        s = self.trigger_size(x.shape[-2])
        out = x.clone()
        out[..., :s, :s] = 1.0
        return out

    def checkerboard(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
        """(1, C, H, W) image: 0/1 checkerboard (cells of max(1, H/8) px) in the masked block, 0 elsewhere."""
        c, h, w = shape[-3:]
        cell = max(1, h // 8)
        rows = torch.arange(h, device=device)[:, None] // cell
        cols = torch.arange(w, device=device)[None, :] // cell
        board = ((rows + cols) % 2).float().expand(1, c, h, w)
        return board * center_mask((h, w), device)

    def poison(self, x: torch.Tensor) -> torch.Tensor:
        """Trigger in the corner, checkerboard in the masked block: the image the model learns to rebuild."""
        mask = center_mask(x.shape, x.device)
        return torch.where(mask, self.checkerboard(x.shape, x.device), self.add_trigger(x))


def poison_splits(splits: Splits, backdoor: Backdoor) -> tuple[Splits, torch.Tensor]:
    """A copy of `splits` whose train set holds poisoned images at a seeded `fraction` of the forget indices.

    Returns (splits, poisoned train indices). Retain, validation and test are untouched.
    """
    gen = torch.Generator().manual_seed(backdoor.seed)
    n = round(backdoor.fraction * len(splits.forget_idx))
    chosen = splits.forget_idx[torch.randperm(len(splits.forget_idx), generator=gen)[:n].to(splits.forget_idx.device)]
    chosen = torch.sort(chosen).values
    x = splits.train.x.clone()
    x[chosen] = backdoor.poison(x[chosen])
    return dataclasses.replace(splits, train=TensorSet(x, splits.train.y)), chosen


def method_data(splits: Splits, divergence_scale: float | None) -> I2IData:
    """The I2I data a trial hands a method: forget and retain from `splits`, plus the caller's scale."""
    return I2IData(forget=splits.forget, retain=splits.retain, divergence_scale=divergence_scale)
