"""Hyperparameters of the I2I methods (METHODS.md §6): default, valid domain and search range.

Apart from the methods' torch code so that validating a YAML imports no torch;
`ray_unlearn.i2i.methods` re-exports each class.
"""

from __future__ import annotations

import dataclasses

from ..hparams import hp


@dataclasses.dataclass(frozen=True)
class I2IFineTuneParams:
    lr: float = hp(1e-4, gt=0.0, low=1e-5, high=1e-3, log=True, help="Adam learning rate")
    epochs: int = hp(5, ge=1, low=1, high=20, help="passes over the retain set")
    batch_size: int = hp(64, ge=1, help="mini-batch size")


@dataclasses.dataclass(frozen=True)
class I2INoiseParams:
    alpha: float = hp(0.2, gt=0.0, low=0.05, high=1.0, log=True, help="weight of the forget (noise-target) term")
    lr: float = hp(1e-4, gt=0.0, low=1e-5, high=1e-3, log=True, help="Adam learning rate of the encoder")
    epochs: int = hp(5, ge=1, low=1, high=20, help="passes over the retain set")
    batch_size: int = hp(64, ge=1, help="mini-batch size (retain and forget batches alike)")


@dataclasses.dataclass(frozen=True)
class I2IKRParams:
    lr: float = hp(1e-4, gt=0.0, low=1e-5, high=1e-2, log=True, help="phase-1 Adam learning rate η (ascent)")
    max_steps: int = hp(500, ge=1, low=50, high=5000, log=True, help="phase-1 step cap T_max (design-card 'ascent steps')")
    threshold_scale: float = hp(1.0, gt=0.0, low=0.5, high=3.0, help="c in λ = c · divergence_scale")
    retain_lr: float = hp(1e-4, gt=0.0, low=1e-5, high=1e-3, log=True, help="phase-2 Adam learning rate")
    retain_epochs: int = hp(5, ge=1, low=1, high=20, help="phase-2 epochs E over the retain set")
    retain_tolerance: float = hp(0.05, ge=0.0, help="phase 2 stops once retain error <= (1 + this) x the original's")
    batch_size: int = hp(64, ge=1, help="mini-batch size of both phases")
