"""The I2I methods (docs/methods.md#image-to-image-methods), each declared once on its hyperparameters:
default, valid domain and search range.

Apart from the methods' torch code so that validating a YAML imports no torch;
`ray_unlearn.i2i.methods` re-exports each class.
"""

from __future__ import annotations

import dataclasses

from ..hparams import hp
from ..methods.entry import method


@method("i2i_finetune", task="i2i", target="ray_unlearn.i2i.methods:I2IFineTune",
        summary="Fine-tune the I2I model on the retain set with its training loss (the forget set is never read).",
        paper="baseline; the knowledge-retention phase of arXiv 2502.04260 alone",
        quick={"epochs": 1})
@dataclasses.dataclass(frozen=True)
class I2IFineTuneParams:
    lr: float = hp(1e-4, gt=0.0, low=1e-5, high=1e-3, log=True, help="Adam learning rate")
    epochs: int = hp(5, ge=1, low=1, high=20, help="passes over the retain set")
    batch_size: int = hp(64, ge=1, help="mini-batch size")


@method("i2i_noise", task="i2i", target="ray_unlearn.i2i.methods:I2INoise",
        summary="Freeze the decoder; move the encoder's code of forget images to that of Gaussian noise, keep retain codes.",
        paper="Li et al., Machine Unlearning for Image-to-Image Generative Models (ICLR 2024)",
        quick={"epochs": 1})
@dataclasses.dataclass(frozen=True)
class I2INoiseParams(I2IFineTuneParams):
    """Fine-tuning's hyperparameters (the encoder's Adam; retain and forget batches of one size) and the forget term."""

    alpha: float = hp(0.2, gt=0.0, low=0.05, high=1.0, log=True, help="weight of the forget (noise-target) term")


@method("i2i_kr", task="i2i", target="ray_unlearn.i2i.methods:I2IKR",
        summary="Decouple (ascend the forget reconstruction loss until D_f is OOD), then retain knowledge on D_r.",
        paper="Varshney and Torra, Realistic Image-to-Image Machine Unlearning via Decoupling and Knowledge Retention "
              "(arXiv 2502.04260)",
        quick={"max_steps": 20, "retain_epochs": 1})
@dataclasses.dataclass(frozen=True)
class I2IKRParams:
    lr: float = hp(1e-4, gt=0.0, low=1e-5, high=1e-2, log=True, help="phase-1 Adam learning rate η (ascent)")
    max_steps: int = hp(500, ge=1, low=50, high=5000, log=True, help="phase-1 step cap T_max (ascent steps)")
    threshold_scale: float = hp(1.0, gt=0.0, low=0.5, high=3.0, help="c in λ = c · divergence_scale")
    retain_lr: float = hp(1e-4, gt=0.0, low=1e-5, high=1e-3, log=True, help="phase-2 Adam learning rate")
    retain_epochs: int = hp(5, ge=1, low=1, high=20, help="phase-2 epochs E over the retain set")
    retain_tolerance: float = hp(0.05, ge=0.0, help="phase 2 stops once retain error <= (1 + this) x the original's")
    batch_size: int = hp(64, ge=1, help="mini-batch size of both phases")
