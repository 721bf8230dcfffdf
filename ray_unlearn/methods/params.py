"""Hyperparameters of every classification method: default, valid domain and search range.

Apart from the methods' torch code so that validating a YAML (`ray_unlearn.config`) imports no
torch; each method module re-exports its class (`from .params import AmunParams`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..hparams import hp
from .entry import method

if TYPE_CHECKING:
    from ..train import OptimSpec


@dataclasses.dataclass(frozen=True)
class SGDParams:
    """Optimiser settings most methods share (docs/methods.md#common-settings); not searched by default.

    `optimizer` is SGD as in every paper's code (their originals are SGD-trained ResNets). `adam`
    (same lr and coupled L2 weight decay, torch's default betas) is an addition for originals
    trained with Adam: on MNIST-1D's, AMUN's SGD sweep winner collapsed on 2 of 3 held-out seeds
    and its Adam winner on none (bench/quality.py); SalUn did better with SGD there, so it keeps SGD.
    """

    batch_size: int = hp(128, ge=1, help="mini-batch size")
    optimizer: str = hp("sgd", choices=("sgd", "adam"), help="sgd (the papers') or adam (for Adam-trained originals)")
    momentum: float = hp(0.9, ge=0.0, lt=1.0, help="SGD momentum (ignored by adam)")
    weight_decay: float = hp(5e-4, ge=0.0, help="L2 weight decay")

    def optim(self, lr: float, **changes: Any) -> "OptimSpec":
        from ..train import OptimSpec  # torch: only when a method runs

        return OptimSpec(lr=lr, optimizer=self.optimizer, momentum=self.momentum, weight_decay=self.weight_decay, **changes)


@method("retrain", task="classification", target="ray_unlearn.methods.retrain:Retrain",
        summary='Train a fresh model on the retain set only (exact unlearning; the gold standard).',
        paper='Reference in every unlearning paper (e.g. SalUn, AMUN, MixUnlearn)',
        quick={'epochs': 2})
@dataclasses.dataclass(frozen=True)
class RetrainParams(SGDParams):
    lr: float = hp(0.05, gt=0.0, low=1e-3, high=0.2, log=True, help="SGD learning rate (cosine schedule)")
    epochs: int = hp(60, ge=1, grid=(15, 30, 60), help="passes over the retain set")
    batch_size: int = hp(64, ge=1, help="mini-batch size")


@method("finetune", task="classification", target="ray_unlearn.methods.finetune:FineTune",
        summary='Fine-tune the original model on the retain set only (catastrophic forgetting).',
        paper='Warnecke et al., Machine Unlearning of Features and Labels (NDSS 2023); baseline in SalUn / AMUN',
        quick={'epochs': 2})
@dataclasses.dataclass(frozen=True)
class FineTuneParams(SGDParams):
    lr: float = hp(0.01, gt=0.0, low=1e-3, high=1e-1, log=True, help="SGD learning rate")
    epochs: int = hp(10, ge=1, grid=(5, 10, 20), help="passes over the retain set")


@method("gradient_ascent", task="classification", target="ray_unlearn.methods.gradient_ascent:GradientAscent",
        summary='Maximise the loss on the forget set (minimise -CE), nothing else.',
        paper='Thudi et al., Unrolling SGD (EuroS&P 2022); Jia et al., Unlearn-Sparse (NeurIPS 2023) settings',
        uses_retain=False,
        quick={'epochs': 2})
@dataclasses.dataclass(frozen=True)
class GradientAscentParams(SGDParams):
    lr: float = hp(1e-4, gt=0.0, low=1e-6, high=1e-3, log=True, help="SGD learning rate")
    epochs: int = hp(5, ge=1, low=1, high=10, help="ascent passes over the forget set")


@method("neggrad_plus", task="classification", target="ray_unlearn.methods.neggrad_plus:NegGradPlus",
        summary='Joint step: beta * CE on retain minus (1 - beta) * CE on forget.',
        paper='Kurmanji et al., Towards Unbounded Machine Unlearning (NeurIPS 2023), NegGrad+ baseline',
        quick={'epochs': 2})
@dataclasses.dataclass(frozen=True)
class NegGradPlusParams(SGDParams):
    beta: float = hp(0.95, ge=0.0, le=1.0, low=0.5, high=0.999, help="weight of the retain loss (1 - beta on the forget loss)")
    lr: float = hp(0.01, gt=0.0, low=1e-4, high=5e-2, log=True, help="SGD learning rate")
    epochs: int = hp(10, ge=1, low=3, high=10, help="passes over the retain set")


@method("random_label", task="classification", target="ray_unlearn.methods.random_label:RandomLabel",
        summary='Fine-tune on the forget set with random labels, interleaved with the retain set.',
        paper='Golatkar et al. (CVPR 2020) baseline; SalUn (Fan et al., ICLR 2024) and AMUN loops',
        quick={'epochs': 2})
@dataclasses.dataclass(frozen=True)
class RandomLabelParams(SGDParams):
    lr: float = hp(0.01, gt=0.0, low=1e-3, high=5e-2, log=True, help="SGD learning rate")
    epochs: int = hp(10, ge=1, low=5, high=15, help="epochs (each: forget pass + retain pass, or one mixed pass)")
    exclude_true: bool = hp(False, help="draw random labels different from the true one")
    mode: str = hp("sequential", choices=("sequential", "mixed"), help="sequential (SalUn) or mixed (AMUN) passes")


@method("l1_sparse", task="classification", target="ray_unlearn.methods.l1_sparse:L1Sparse",
        summary='Fine-tune on the retain set with an L1 penalty that decays linearly to zero.',
        paper='Jia et al., Model Sparsity Can Simplify Machine Unlearning (NeurIPS 2023)',
        quick={'epochs': 2})
@dataclasses.dataclass(frozen=True)
class L1SparseParams(SGDParams):
    gamma: float = hp(5e-4, ge=0.0, low=1e-6, high=1e-3, log=True, help="initial L1 weight, decayed linearly to 0")
    lr: float = hp(0.01, gt=0.0, low=1e-3, high=1e-1, log=True, help="SGD learning rate")
    epochs: int = hp(10, ge=1, low=5, high=15, help="passes over the retain set")


@method("salun", task="classification", target="ray_unlearn.methods.salun:SalUn",
        summary='Random labelling that updates only the weights most salient to the forget loss.',
        paper='Fan et al., SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency (ICLR 2024)',
        quick={'epochs': 2})
@dataclasses.dataclass(frozen=True)
class SalUnParams(RandomLabelParams):
    # SalUn's official default (`--batch_size 256`), also used for the saliency pass; AMUN's code uses 128.
    batch_size: int = hp(256, ge=1, help="mini-batch size (RL passes and the saliency pass)")
    lr: float = hp(0.013, gt=0.0, low=1e-3, high=5e-2, log=True, help="SGD learning rate")
    mask_ratio: float = hp(0.5, gt=0.0, le=1.0, low=0.1, high=0.9, help="fraction r of weights (by saliency) that may change")


@method("scrub", task="classification", target="ray_unlearn.methods.scrub:Scrub",
        summary='Student-teacher: maximise divergence from the original on forget, minimise it (plus CE) on retain.',
        paper='Kurmanji et al., Towards Unbounded Machine Unlearning (NeurIPS 2023)',
        quick={'epochs': 2})
@dataclasses.dataclass(frozen=True)
class ScrubParams(SGDParams):
    lr: float = hp(5e-4, gt=0.0, low=1e-5, high=1e-2, log=True, help="SGD learning rate")
    msteps: int = hp(2, ge=0, low=1, high=5, help="epochs that start with a max (forget) pass: the ascent steps")
    epochs: int = hp(3, ge=1, low=2, high=10, help="epochs E (each ends with a min pass over the retain set)")
    alpha: float = hp(1e-3, ge=0.0, low=1e-3, high=1.0, log=True, help="weight of the distillation term on the retain set")
    gamma: float = hp(0.99, ge=0.0, low=0.5, high=1.0, help="weight of the CE term on the retain set")
    temperature: float = hp(4.0, gt=0.0, grid=(1.0, 2.0, 4.0), help="distillation temperature T")
    forget_batch_size: int = hp(32, ge=1, help="batch size of the max passes")
    lr_milestones: tuple[int, ...] = hp((3, 5, 9), ge=1, help="epochs after which lr is multiplied by 0.1 (official lr_decay_epochs)")


@method("amun", task="classification", target="ray_unlearn.methods.amun:Amun",
        summary='Fine-tune on the forget set plus its nearest adversarial examples labelled with the wrong class.',
        paper='Ebrahimpour-Boroojeny et al., AMUN: Adversarial Machine UNlearning (arXiv 2503.00917)',
        quick={'epochs': 2, 'steps': 10, 'epsilon': 0.1})
@method("amun_no_retain", task="classification", target="ray_unlearn.methods.amun:AmunNoRetain",
        summary='AMUN without a retain set: fine-tune on the forget set and its adversarial examples only.',
        paper='Ebrahimpour-Boroojeny et al., AMUN: Adversarial Machine UNlearning (arXiv 2503.00917)',
        uses_retain=False,
        quick={'epochs': 2, 'steps': 10, 'epsilon': 0.1})
@dataclasses.dataclass(frozen=True)
class AmunParams(SGDParams):
    epsilon: float = hp(0.04, gt=0.0, low=0.005, high=0.5, log=True, help="initial L2 PGD radius eps0 in pixel space")
    steps: int = hp(50, ge=1, grid=(10, 20, 50, 100), help="PGD steps per epsilon round")
    max_doublings: int = hp(20, ge=0, le=40, help="cap on epsilon doublings for samples still classified correctly")
    lr: float = hp(0.01, gt=0.0, low=1e-5, high=0.1, log=True, help="fine-tuning learning rate")
    decay_step: int = hp(1, ge=1, grid=(1, 5, 10), help="epochs between learning-rate decays")
    gamma: float = hp(0.1, gt=0.0, le=1.0, help="learning-rate decay factor")
    epochs: int = hp(10, ge=1, low=3, high=20, help="fine-tuning epochs")


@method("amun_salun", task="classification", target="ray_unlearn.methods.amun:AmunSalUn",
        summary='AMUN with gradients masked to the weights most salient to the forget loss (SalUn mask).',
        paper='Ebrahimpour-Boroojeny et al., AMUN: Adversarial Machine UNlearning (arXiv 2503.00917)',
        quick={'epochs': 2, 'steps': 10, 'epsilon': 0.1})
@dataclasses.dataclass(frozen=True)
class AmunSalUnParams(AmunParams):
    mask_ratio: float = hp(0.5, gt=0.0, le=1.0, low=0.1, high=0.9, help="SalUn mask: fraction r of weights that may change")


@method("mixunlearn", task="classification", target="ray_unlearn.methods.mixunlearn:MixUnlearn",
        summary='Adversarial mixup: a MixBlock mixes forget and retain samples against an EMA unlearner; contrastive losses (labels).',
        paper='Adversarial Mixup Unlearning, MixUnlearn (arXiv 2502.10288, ICLR 2025)',
        quick={'epochs': 2})
@method("mixunlearn_agnostic", task="classification", target="ray_unlearn.methods.mixunlearn:MixUnlearnAgnostic",
        summary="MixUnlearn without labels: targets are the original model's sharpened predictions.",
        paper='Adversarial Mixup Unlearning, MixUnlearn (arXiv 2502.10288, ICLR 2025)',
        quick={'epochs': 2})
@dataclasses.dataclass(frozen=True)
class MixUnlearnParams:
    alpha: float = hp(0.75, gt=0.0, low=0.1, high=4.0, log=True, help="mixup strength: lambda ~ Beta(alpha, alpha)")
    gen_interval: int = hp(4, ge=1, grid=(1, 2, 4, 8), help="k_gen: one generator step every k unlearner steps")
    tau_gen: float = hp(1.0, gt=0.0, low=0.05, high=5.0, log=True, help="temperature of the generator's L_mix")
    tau_mix: float = hp(1.0, gt=0.0, low=0.05, high=5.0, log=True, help="temperature of the unlearner's L_mix")
    tau_real: float = hp(1.0, gt=0.0, low=0.05, high=5.0, log=True, help="temperature of L_real")
    omega: float = hp(1.0, ge=0.0, low=0.1, high=10.0, log=True, help="weight of the real-sample loss L_real")
    sharpen_temperature: float = hp(0.3, gt=0.0, le=1.0, low=0.1, high=1.0, help="label-agnostic targets: Sharpen T")
    ema_momentum: float = hp(0.999, ge=0.0, lt=1.0, grid=(0.99, 0.999, 0.9999), help="EMA m of the unlearner copy the generator attacks")
    lr: float = hp(1e-4, gt=0.0, low=1e-5, high=1e-3, log=True, help="unlearner Adam learning rate (digits: 1e-3)")
    lr_gen: float = hp(1e-3, gt=0.0, low=1e-4, high=1e-2, log=True, help="MixBlock Adam learning rate")
    epochs: int = hp(10, ge=1, low=5, high=30, help="passes over the forget set (digits: 30)")
    batch_size: int = hp(32, ge=2, help="B: forget and retain samples per step")
    pair_different_class: bool = hp(False, help="pair each forget sample with a retain sample of another class")
