"""AMUN: Adversarial Machine UNlearning (arXiv 2503.00917), docs/methods.md#amun.

Step A, once per (original model, forget set, eps0, S): for every forget
sample the nearest misclassified input by L2 PGD with epsilon doubling,
labelled with the model's wrong prediction (memoised, shared by all trials).
Step B: plain CE fine-tuning on shuffled D_r u D_f u D_A (or D_f u D_A
without a retain set); real samples may be augmented, D_A never.
"""

from __future__ import annotations

import torch
from torch import nn

from ..train import batches, make_optimizer
from .attacks import AdversarialSet, pgd_l2_nearest
from .base import Context, Method, UnlearnData
from .params import AmunParams, AmunSalUnParams
from .saliency import SaliencyMask

ATTACK_VERSION = 3  # bump when the attack changes what a memoised adversarial set holds (3: random steps where the gradient vanishes)


def adversarial_set(model: nn.Module, data: UnlearnData, hp: AmunParams, ctx: Context) -> AdversarialSet:
    """Step A on the (unmodified) original weights, through the context's memo."""
    key = {"epsilon": hp.epsilon, "steps": hp.steps, "max_doublings": hp.max_doublings, "attack": ATTACK_VERSION}

    def compute() -> dict[str, torch.Tensor]:
        adv = pgd_l2_nearest(
            model, data.forget.x, data.forget.y,
            epsilon=hp.epsilon, steps=hp.steps, max_doublings=hp.max_doublings, input_range=data.input_range,
        )
        return {k: v.cpu() for k, v in adv.to_dict().items()}

    stored = ctx.memo("amun_adversarial", key, compute)
    return AdversarialSet.from_dict({k: v.to(ctx.device) for k, v in stored.items()})


class Amun(Method):
    name = "amun"

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: AmunParams, ctx: Context) -> nn.Module:
        adv = adversarial_set(model, data, hp, ctx)
        ctx.extras.update(
            adv_mean_epsilon=adv.epsilon.mean().item(),
            adv_mean_distance=adv.distance.mean().item(),
            adv_found_fraction=adv.found.float().mean().item(),
            adv_random_step_samples=float((adv.random_steps > 0).sum()),
        )
        real = data.forget if data.retain is None else data.retain.concat(data.forget)
        train = real.concat(adv.training_set())
        augment_mask = torch.arange(len(train), device=train.x.device) < len(real)
        spec = hp.optim(hp.lr, schedule="step", step_size=hp.decay_step, gamma=hp.gamma)
        optimizer = make_optimizer(model.parameters(), spec)
        hooks = {}
        if isinstance(hp, AmunSalUnParams):
            mask = SaliencyMask(model, data.forget, hp.mask_ratio, hp.batch_size)
            ctx.extras["mask_density"] = mask.density
            hooks = {"before_step": mask.mask_gradients, "after_step": lambda: mask.restore_frozen(optimizer)}
        ctx.fit(
            model,
            lambda: batches(train, hp.batch_size, ctx.generator, augment=data.augment, augment_mask=augment_mask),
            hp,
            spec=spec,
            optimizer=optimizer,
            **hooks,
        )
        return model


class AmunSalUn(Amun):
    name = "amun_salun"


class AmunNoRetain(Amun):
    name = "amun_no_retain"
