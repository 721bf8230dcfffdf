"""Every i2i method by name, without importing torch: task, hyperparameters, description,
and where its `Method` class lives (imported when the method runs).

Adding a method: its module (a `Method` subclass) and its `Params` in params.py, one line below,
one YAML in search_spaces/; tests/methods/test_contract.py then covers it.
"""

from __future__ import annotations

from ..methods.entry import MethodEntry
from .params import I2IFineTuneParams, I2IKRParams, I2INoiseParams

CATALOG: dict[str, MethodEntry] = {e.name: e for e in [
    MethodEntry('i2i_kr', 'i2i', I2IKRParams, "ray_unlearn.i2i.methods:I2IKR",
                'Decouple (ascend the forget reconstruction loss until D_f is OOD), then retain knowledge on D_r.',
                'Image-to-image unlearning by decoupling and knowledge retention (arXiv 2502.04260)'),
    MethodEntry('i2i_noise', 'i2i', I2INoiseParams, "ray_unlearn.i2i.methods:I2INoise",
                "Freeze the decoder; move the encoder's code of forget images to that of Gaussian noise, keep retain codes.",
                'Li et al., Machine Unlearning for Image-to-Image Generative Models (ICLR 2024)'),
    MethodEntry('i2i_finetune', 'i2i', I2IFineTuneParams, "ray_unlearn.i2i.methods:I2IFineTune",
                'Fine-tune the I2I model on the retain set with its training loss (the forget set is never read).',
                'baseline; the knowledge-retention phase of arXiv 2502.04260 alone'),
]}
