"""Every classification method by name, without importing torch: task, hyperparameters, description,
and where its `Method` class lives (imported when the method runs).

Adding a method: its module (a `Method` subclass) and its `Params` in params.py, one line below,
one YAML in search_spaces/; tests/methods/test_contract.py then covers it.
"""

from __future__ import annotations

from .entry import MethodEntry
from .params import (
                     AmunParams,
                     AmunSalUnParams,
                     FineTuneParams,
                     GradientAscentParams,
                     L1SparseParams,
                     MixUnlearnParams,
                     NegGradPlusParams,
                     RandomLabelParams,
                     RetrainParams,
                     SalUnParams,
                     ScrubParams,
)

CATALOG: dict[str, MethodEntry] = {e.name: e for e in [
    MethodEntry('retrain', 'classification', RetrainParams, "ray_unlearn.methods.retrain:Retrain",
                'Train a fresh model on the retain set only (exact unlearning; the gold standard).',
                'Reference in every unlearning paper (e.g. SalUn, AMUN, MixUnlearn)'),
    MethodEntry('finetune', 'classification', FineTuneParams, "ray_unlearn.methods.finetune:FineTune",
                'Fine-tune the original model on the retain set only (catastrophic forgetting).',
                'Warnecke et al., Machine Unlearning of Features and Labels (NDSS 2023); baseline in SalUn / AMUN'),
    MethodEntry('gradient_ascent', 'classification', GradientAscentParams, "ray_unlearn.methods.gradient_ascent:GradientAscent",
                'Maximise the loss on the forget set (minimise -CE), nothing else.',
                'Thudi et al., Unrolling SGD (EuroS&P 2022); Jia et al., Unlearn-Sparse (NeurIPS 2023) settings', uses_retain=False),
    MethodEntry('neggrad_plus', 'classification', NegGradPlusParams, "ray_unlearn.methods.neggrad_plus:NegGradPlus",
                'Joint step: beta * CE on retain minus (1 - beta) * CE on forget.',
                'Kurmanji et al., Towards Unbounded Machine Unlearning (NeurIPS 2023), NegGrad+ baseline'),
    MethodEntry('random_label', 'classification', RandomLabelParams, "ray_unlearn.methods.random_label:RandomLabel",
                'Fine-tune on the forget set with random labels, interleaved with the retain set.',
                'Golatkar et al. (CVPR 2020) baseline; SalUn (Fan et al., ICLR 2024) and AMUN loops'),
    MethodEntry('l1_sparse', 'classification', L1SparseParams, "ray_unlearn.methods.l1_sparse:L1Sparse",
                'Fine-tune on the retain set with an L1 penalty that decays linearly to zero.',
                'Jia et al., Model Sparsity Can Simplify Machine Unlearning (NeurIPS 2023)'),
    MethodEntry('salun', 'classification', SalUnParams, "ray_unlearn.methods.salun:SalUn",
                'Random labelling that updates only the weights most salient to the forget loss.',
                'Fan et al., SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency (ICLR 2024)'),
    MethodEntry('scrub', 'classification', ScrubParams, "ray_unlearn.methods.scrub:Scrub",
                'Student-teacher: maximise divergence from the original on forget, minimise it (plus CE) on retain.',
                'Kurmanji et al., Towards Unbounded Machine Unlearning (NeurIPS 2023)'),
    MethodEntry('amun', 'classification', AmunParams, "ray_unlearn.methods.amun:Amun",
                'Fine-tune on the forget set plus its nearest adversarial examples labelled with the wrong class.',
                'Ebrahimpour-Boroojeny et al., AMUN: Adversarial Machine UNlearning (arXiv 2503.00917)'),
    MethodEntry('amun_salun', 'classification', AmunSalUnParams, "ray_unlearn.methods.amun:AmunSalUn",
                'AMUN with gradients masked to the weights most salient to the forget loss (SalUn mask).',
                'Ebrahimpour-Boroojeny et al., AMUN: Adversarial Machine UNlearning (arXiv 2503.00917)'),
    MethodEntry('amun_no_retain', 'classification', AmunParams, "ray_unlearn.methods.amun:AmunNoRetain",
                'AMUN without a retain set: fine-tune on the forget set and its adversarial examples only.',
                'Ebrahimpour-Boroojeny et al., AMUN: Adversarial Machine UNlearning (arXiv 2503.00917)', uses_retain=False),
    MethodEntry('mixunlearn', 'classification', MixUnlearnParams, "ray_unlearn.methods.mixunlearn:MixUnlearn",
                'Adversarial mixup: a MixBlock mixes forget and retain samples against an EMA unlearner; contrastive losses (labels).',
                'Adversarial Mixup Unlearning, MixUnlearn (arXiv 2502.10288, ICLR 2025)'),
    MethodEntry('mixunlearn_agnostic', 'classification', MixUnlearnParams, "ray_unlearn.methods.mixunlearn:MixUnlearnAgnostic",
                "MixUnlearn without labels: targets are the original model's sharpened predictions.",
                'Adversarial Mixup Unlearning, MixUnlearn (arXiv 2502.10288, ICLR 2025)'),
]}
