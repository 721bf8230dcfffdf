"""MixUnlearn: adversarial mixup unlearning (arXiv 2502.10288, ICLR 2025), docs/methods.md#mixunlearn.

A light generator (MixBlock) mixes forget and retain samples with a learned
pixel mask, adversarially: it is trained to make the (EMA copy of the)
unlearner reveal forget targets and lose retain targets on the mixtures.
The unlearner is trained with contrastive losses on the mixtures (L_mix) and
on real samples (L_real) to move toward retain targets and away from forget
targets. Targets and features always come from the frozen original model.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import autocast, fp32_logits, plain_classifier
from ..errors import MethodError
from ..train import device_generator
from .base import Context, Method, UnlearnData
from .params import MixUnlearnParams

# --- targets and losses ---------------------------------------------------------------

def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sharpen(p)_k = p_k^(1/T) / sum_j p_j^(1/T), computed in log space."""
    return torch.softmax(torch.log(probs.clamp_min(1e-12)) / temperature, dim=1)


def sim_loss(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SimLoss(a, b) = 1 - cos(a, b), per sample."""
    return 1.0 - F.cosine_similarity(p, target, dim=1)


def mix_loss(p_mix: torch.Tensor, retain_targets: torch.Tensor, forget_targets: torch.Tensor, lam: float, tau: float) -> torch.Tensor:
    """L_mix = sum_k (1-lam) S^r_k - B log sum_k exp(lam S^f_k / tau); retain targets already follow pi."""
    s_r = sim_loss(p_mix, retain_targets)
    s_f = sim_loss(p_mix, forget_targets)
    return ((1.0 - lam) * s_r).sum() - len(p_mix) * torch.logsumexp(lam * s_f / tau, dim=0)


def real_loss(p_r: torch.Tensor, t_r: torch.Tensor, p_f: torch.Tensor, t_f: torch.Tensor, tau: float) -> torch.Tensor:
    """L_real = sum_j SimLoss(p(x_j), t_j) over retain - B log sum_i exp(SimLoss(p(x_i), t_i) / tau) over forget."""
    return sim_loss(p_r, t_r).sum() - len(p_f) * torch.logsumexp(sim_loss(p_f, t_f) / tau, dim=0)


def mix_inputs(masks: torch.Tensor, x_f: torch.Tensor, x_r: torch.Tensor) -> torch.Tensor:
    """x_mix = M_f * x_f + M_r * x_r, the mask broadcast over channels."""
    return masks[:, 0:1] * x_f + masks[:, 1:2] * x_r


# --- the generator ----------------------------------------------------------------------

class MixBlock(nn.Module):
    """AdAutoMix-style adaptive mask from mix-layer features of both samples and lambda.

    66,306 parameters for C = 256 (ResNet-18 stage 3), 1,122 for C = 32 (digits SmallCNN).
    """

    def __init__(self, channels: int):
        super().__init__()
        c_in, half = channels + 1, max(1, channels // 2)
        self.q = nn.Conv1d(c_in, half, 1)  # 1x1 convolutions over flattened positions
        self.k = nn.Conv1d(c_in, half, 1)
        self.v = nn.Conv1d(c_in, 1, 1)
        self.scale = math.sqrt(half)
        for conv in (self.q, self.k, self.v):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, feat_f: torch.Tensor, feat_r: torch.Tensor, lam: float, out_shape: tuple[int, ...]) -> torch.Tensor:
        """Masks (N, 2, *out_shape): channel 0 = M_f, channel 1 = M_r, summing to 1."""
        n = len(feat_f)
        spatial = tuple(feat_f.shape[2:])
        ff = feat_f.reshape(n, feat_f.shape[1], -1)
        fr = feat_r.reshape(n, feat_r.shape[1], -1)
        ff = torch.cat([ff, torch.full_like(ff[:, :1], lam)], 1)
        fr = torch.cat([fr, torch.full_like(fr[:, :1], 1.0 - lam)], 1)
        q_f, k_f, q_r, k_r = F.relu(self.q(ff)), F.relu(self.k(ff)), F.relu(self.q(fr)), F.relu(self.k(fr))
        attn = torch.softmax(q_f.transpose(1, 2) @ k_r / self.scale, dim=-1)  # A, hw x hw
        attn_r = torch.softmax(q_r.transpose(1, 2) @ k_f / self.scale, dim=-1)  # A'
        m_f = attn @ self.v(ff).transpose(1, 2)  # (n, hw, 1)
        m_r = attn_r @ self.v(fr).transpose(1, 2)
        logits = torch.cat([m_f, m_r], 2).transpose(1, 2).reshape(n, 2, *spatial)
        logits = _upsample(logits, out_shape)
        return torch.softmax(logits, dim=1)


def _upsample(m: torch.Tensor, out_shape: tuple[int, ...]) -> torch.Tensor:
    if m.dim() == 2:  # features without positions (MLP): one mask value per sample
        m = m.unsqueeze(-1)
    if tuple(m.shape[2:]) == tuple(out_shape):
        return m
    if len(out_shape) == 2 and m.dim() == 4:
        return F.interpolate(m, size=out_shape, mode="bilinear", align_corners=False)
    if len(out_shape) == 1 and m.dim() == 3:
        return F.interpolate(m, size=out_shape, mode="linear", align_corners=False)
    flat = m.reshape(m.shape[0], 2, -1).mean(-1)  # no shared geometry: a per-sample mix ratio
    return flat.view(m.shape[0], 2, *([1] * len(out_shape))).expand(-1, -1, *out_shape)


# --- one run's state and its steps ---------------------------------------------------------

class MixUnlearnState:
    """The unlearner, its EMA copy, the frozen original and the MixBlock, with one function per step."""

    def __init__(self, model: nn.Module, hp: MixUnlearnParams, num_classes: int, use_labels: bool, sample: torch.Tensor):
        self.hp, self.num_classes, self.use_labels = hp, num_classes, use_labels
        self.unlearner = model
        if not hasattr(model, "mix_features"):
            raise MethodError(
                "mixunlearn mixes features of an intermediate layer (docs/references.md#the-mix-layer: the built-in models' `features` "
                "output, e.g. ResNet-18 stage 3); this model has none: name a submodule with model.mix_layer (e.g. layer3)"
            )
        self.original = _frozen(copy.deepcopy(model))
        self.ema = _frozen(copy.deepcopy(model))
        with torch.no_grad():
            channels = self.original.mix_features(sample[:2]).shape[1]
        self.block = MixBlock(channels).to(sample.device)
        self.opt_unlearner = torch.optim.Adam(self.unlearner.parameters(), lr=hp.lr)
        self.opt_block = torch.optim.Adam(self.block.parameters(), lr=hp.lr_gen)
        # the EMA update as two multi-tensor kernels (and one copy), not one pair per tensor
        self.ema_params, self.unlearner_params = list(self.ema.parameters()), list(self.unlearner.parameters())
        self.ema_buffers, self.unlearner_buffers = list(self.ema.buffers()), list(self.unlearner.buffers())

    @torch.no_grad()
    def original_outputs(self, x: torch.Tensor, logits: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The frozen original's mix-layer features and (if asked) logits, from one forward pass where the
        model is a plain Classifier (features -> trunk -> classifier), else from two."""
        feat = self.original.mix_features(x)
        if not logits:
            return feat, None
        if plain_classifier(self.original):
            return feat, self.original.classifier(self.original.trunk(feat)).float()
        return feat, self.original(x).float()

    def targets(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """one-hot(y) (label-aware) or Sharpen(p_original(x)) (label-agnostic: y is never read)."""
        return self.targets_from(y, None if self.use_labels else self.original_outputs(x, logits=True)[1])

    def targets_from(self, y: torch.Tensor | None, logits: torch.Tensor | None) -> torch.Tensor:
        """`targets` from the original's logits already computed."""
        if self.use_labels:
            return F.one_hot(y, self.num_classes).float()
        return sharpen(torch.softmax(logits, 1), self.hp.sharpen_temperature)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.original.mix_features(x)

    def unlearner_step(self, x_f, x_r, t_f, t_r, feat_f, feat_r, lam: float) -> torch.Tensor:
        """Minimise L_mix(theta_U; tau_mix) + omega L_real(theta_U) with the mask detached; x_r, t_r, feat_r follow pi."""
        hp = self.hp
        with torch.no_grad():
            x_mix = mix_inputs(self.block(feat_f, feat_r, lam, tuple(x_f.shape[2:])), x_f, x_r)
        self.unlearner.train()
        with autocast(x_f.device):
            logits = fp32_logits(self.unlearner, torch.cat([x_mix, x_r, x_f]))
        p_mix, p_r, p_f = torch.softmax(logits, 1).split(len(x_f))
        loss = mix_loss(p_mix, t_r, t_f, lam, hp.tau_mix) + hp.omega * real_loss(p_r, t_r, p_f, t_f, hp.tau_real)
        self.opt_unlearner.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_unlearner.step()
        return loss.detach()

    def generator_loss(self, x_f, x_r, t_f, t_r, feat_f, feat_r, lam: float) -> torch.Tensor:
        """L_gen = -L_mix(theta_EMA; tau_gen), differentiable in the MixBlock only."""
        x_mix = mix_inputs(self.block(feat_f, feat_r, lam, tuple(x_f.shape[2:])), x_f, x_r)
        with autocast(x_f.device):
            logits = fp32_logits(self.ema, x_mix)
        return -mix_loss(torch.softmax(logits, 1), t_r, t_f, lam, self.hp.tau_gen)

    def generator_step(self, x_f, x_r, t_f, t_r, feat_f, feat_r, lam: float) -> torch.Tensor:
        loss = self.generator_loss(x_f, x_r, t_f, t_r, feat_f, feat_r, lam)
        self.opt_block.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_block.step()
        return loss.detach()

    @torch.no_grad()
    def update_ema(self) -> None:
        """theta_EMA <- m theta_EMA + (1 - m) theta_U; BN buffers copied."""
        m = self.hp.ema_momentum
        torch._foreach_mul_(self.ema_params, m)
        torch._foreach_add_(self.ema_params, self.unlearner_params, alpha=1.0 - m)
        if self.ema_buffers:  # a model without BatchNorm has none
            torch._foreach_copy_(self.ema_buffers, self.unlearner_buffers)


def _frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _pair_different_class(labels_f: torch.Tensor, labels_r: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Swap pairings so forget sample k meets a retain sample of another class where one is available."""
    perm = perm.clone()
    for k in range(len(perm)):
        if labels_r[perm[k]] == labels_f[k]:
            for j in range(len(perm)):
                if labels_r[perm[j]] != labels_f[k] and labels_r[perm[k]] != labels_f[j]:
                    perm[k], perm[j] = perm[j].clone(), perm[k].clone()
                    break
    return perm


class MixUnlearn(Method):
    name = "mixunlearn"
    use_labels = True

    def unlearn(self, model: nn.Module, data: UnlearnData, hp: MixUnlearnParams, ctx: Context) -> nn.Module:
        forget, retain = data.forget, data.retain
        size = min(hp.batch_size, len(forget), len(retain))
        state = MixUnlearnState(model, hp, data.num_classes, self.use_labels, forget.x)
        rng = np.random.RandomState(ctx.seed)  # lambda ~ Beta(alpha, alpha), one per batch
        device = forget.x.device
        gen = device_generator(ctx.generator, device)  # permutations drawn where the data is (on CPU: ctx.generator)
        retain_stream = _cycle_indices(len(retain), size, gen, device)
        step = generator_steps = 0
        for epoch in range(1, hp.epochs + 1):
            order = torch.randperm(len(forget), generator=gen, device=device)
            losses_u, losses_g = [], []  # on the device: one sync per epoch
            for start in range(0, len(forget) - size + 1, size):  # drop the last partial batch
                idx_f, idx_r = order[start : start + size], next(retain_stream)
                perm = torch.randperm(size, generator=gen, device=device)
                lam_u, lam_g = float(rng.beta(hp.alpha, hp.alpha)), float(rng.beta(hp.alpha, hp.alpha))
                x_f, x_r = forget.x[idx_f], retain.x[idx_r]
                y_f, y_r = (forget.y[idx_f], retain.y[idx_r]) if self.use_labels else (None, None)
                feat_f, logits_f = state.original_outputs(x_f, logits=not self.use_labels)
                feat_r, logits_r = state.original_outputs(x_r, logits=not self.use_labels)
                if hp.pair_different_class:  # a per-sample loop: on host copies, not one sync per comparison
                    pf = y_f if self.use_labels else logits_f.argmax(1)
                    pr = y_r if self.use_labels else logits_r.argmax(1)
                    perm = _pair_different_class(pf.cpu(), pr.cpu(), perm.cpu()).to(device)
                t_f, t_r = state.targets_from(y_f, logits_f), state.targets_from(y_r, logits_r)
                args = (x_f, x_r[perm], t_f, t_r[perm], feat_f, feat_r[perm])
                losses_u.append(state.unlearner_step(*args, lam_u))
                if step % hp.gen_interval == 0:
                    losses_g.append(state.generator_step(*args, lam_g))
                    generator_steps += 1
                state.update_ema()
                step += 1
                ctx.extras.update(unlearner_steps=float(step), generator_steps=float(generator_steps))
            logs = {"loss": _mean(losses_u)}
            if losses_g:
                logs["generator_loss"] = _mean(losses_g)
            if not math.isfinite(logs["loss"]):
                raise FloatingPointError(f"loss became {logs['loss']}")
            if not ctx.report(epoch, model, **logs):
                break
        return model


def _mean(losses: list[torch.Tensor]) -> float:
    """Mean of per-step losses as float64, as a mean of their .item() values would be."""
    if not losses:
        return math.nan
    return float(np.mean(torch.stack(losses).float().cpu().numpy().astype(np.float64)))


def _cycle_indices(n: int, size: int, generator: torch.Generator, device: torch.device):
    """Endless batches of `size` indices into a set of `n`, reshuffled every pass, no partial batch."""
    while True:
        order = torch.randperm(n, generator=generator, device=device)
        for start in range(0, n - size + 1, size):
            yield order[start : start + size]


class MixUnlearnAgnostic(MixUnlearn):
    name = "mixunlearn_agnostic"
    use_labels = False
