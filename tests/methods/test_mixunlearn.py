"""MixUnlearn (docs/methods.md#mixunlearn): every expected value here is computed independently of the code
under test — a hand case, or a plain-loop reference written from the formulas there."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from ray_unlearn.data.base import TensorSet
from ray_unlearn.methods import Context, UnlearnData
from ray_unlearn.methods.mixunlearn import (
    MixBlock,
    MixUnlearn,
    MixUnlearnAgnostic,
    MixUnlearnParams,
    MixUnlearnState,
    mix_inputs,
    mix_loss,
    real_loss,
    sharpen,
    sim_loss,
)
from ray_unlearn.models.base import Classifier

from .common import quick_params, state_equal, unlearn_data

torch.set_num_threads(1)
B = 5
K = 3  # classes of the tiny model
ADAM_EPS = 1e-8


# --- references written from docs/methods.md#mixunlearn-losses, one scalar at a time -----------

def ref_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SimLoss(a, b) = 1 - cos(a, b) for two vectors."""
    dot = sum(a[i] * b[i] for i in range(len(a)))
    norm_a = torch.sqrt(sum(a[i] * a[i] for i in range(len(a))))
    norm_b = torch.sqrt(sum(b[i] * b[i] for i in range(len(b))))
    return 1 - dot / (norm_a * norm_b)


def ref_mix_loss(p_mix, t_r, t_f, lam: float, tau: float) -> torch.Tensor:
    """L_mix = sum_k (1-lam) S^r_k - B log sum_k exp(lam S^f_k / tau)."""
    n = len(p_mix)
    retain_term = sum((1 - lam) * ref_sim(p_mix[k], t_r[k]) for k in range(n))
    forget_term = n * torch.log(sum(torch.exp(lam * ref_sim(p_mix[k], t_f[k]) / tau) for k in range(n)))
    return retain_term - forget_term


def ref_real_loss(p_r, t_r, p_f, t_f, tau: float) -> torch.Tensor:
    """L_real = sum_j SimLoss(p(x_j), t_j) - B log sum_i exp(SimLoss(p(x_i), t_i) / tau)."""
    n = len(p_f)
    retain_term = sum(ref_sim(p_r[j], t_r[j]) for j in range(len(p_r)))
    forget_term = n * torch.log(sum(torch.exp(ref_sim(p_f[i], t_f[i]) / tau) for i in range(n)))
    return retain_term - forget_term


def ref_resize_weights(n_in: int, n_out: int) -> list[tuple[int, int, float, float]]:
    """Linear interpolation taps (align_corners=False, half-pixel centres): (i0, i1, w0, w1) per output."""
    taps = []
    for o in range(n_out):
        src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        w1 = src - i0
        taps.append((i0, i1, 1.0 - w1, w1))
    return taps


def ref_mixblock(block: MixBlock, feat_f, feat_r, lam: float, out_shape: tuple[int, ...]) -> torch.Tensor:
    """Steps 1-4 of the MixBlock with explicit loops over positions, using the block's own weights."""
    wq, bq = block.q.weight.detach().reshape(block.q.weight.shape[0], -1), block.q.bias.detach()
    wk, bk = block.k.weight.detach().reshape(block.k.weight.shape[0], -1), block.k.bias.detach()
    wv, bv = block.v.weight.detach().reshape(1, -1), block.v.bias.detach()
    half = wq.shape[0]
    n, c = feat_f.shape[:2]
    spatial = tuple(feat_f.shape[2:])
    positions = [(i,) for i in range(spatial[0])] if len(spatial) == 1 else [(i, j) for i in range(spatial[0]) for j in range(spatial[1])]
    out = torch.zeros(n, 2, *out_shape, dtype=torch.float64)
    for s in range(n):
        # 1. the lambda channel: lam beside the forget features, 1 - lam beside the retain features
        f = [torch.cat([feat_f[(s, slice(None), *p)], torch.tensor([lam])]).double() for p in positions]
        r = [torch.cat([feat_r[(s, slice(None), *p)], torch.tensor([1.0 - lam])]).double() for p in positions]
        # 2. shared 1x1 convolutions
        relu = lambda z: torch.clamp(z, min=0)  # noqa: E731
        q_f = [relu(wq.double() @ x + bq.double()) for x in f]
        k_f = [relu(wk.double() @ x + bk.double()) for x in f]
        v_f = [float(wv.double() @ x + bv.double()) for x in f]
        q_r = [relu(wq.double() @ x + bq.double()) for x in r]
        k_r = [relu(wk.double() @ x + bk.double()) for x in r]
        v_r = [float(wv.double() @ x + bv.double()) for x in r]
        # 3.-4. row-softmax attention; m_f = A v(F_f), m_r = A' v(F_r)
        hw = len(positions)
        m = torch.zeros(2, hw, dtype=torch.float64)
        for i in range(hw):
            a = [math.exp(float(q_f[i] @ k_r[j]) / math.sqrt(half)) for j in range(hw)]
            a2 = [math.exp(float(q_r[i] @ k_f[j]) / math.sqrt(half)) for j in range(hw)]
            m[0, i] = sum(a[j] * v_f[j] for j in range(hw)) / sum(a)
            m[1, i] = sum(a2[j] * v_r[j] for j in range(hw)) / sum(a2)
        m = m.reshape(2, *spatial)
        # upsampling: bilinear (2-D) or linear (1-D), then softmax over the 2 channels
        if len(spatial) == 1:
            taps = ref_resize_weights(spatial[0], out_shape[0])
            up = torch.stack([m[:, i0] * w0 + m[:, i1] * w1 for i0, i1, w0, w1 in taps], -1)
        else:
            rows, cols = ref_resize_weights(spatial[0], out_shape[0]), ref_resize_weights(spatial[1], out_shape[1])
            up = torch.zeros(2, *out_shape, dtype=torch.float64)
            for oy, (y0, y1, wy0, wy1) in enumerate(rows):
                for ox, (x0, x1, wx0, wx1) in enumerate(cols):
                    up[:, oy, ox] = (wy0 * wx0 * m[:, y0, x0] + wy0 * wx1 * m[:, y0, x1]
                                     + wy1 * wx0 * m[:, y1, x0] + wy1 * wx1 * m[:, y1, x1])
        e = torch.exp(up)
        out[s] = e / (e[0] + e[1])
    return out


# --- a tiny classifier with a mix layer, so every forward pass is cheap -------------------------

def tiny_model(seed: int, bn: bool = False) -> Classifier:
    """1x4x4 inputs -> mix layer 4x2x2 -> 3 logits."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 4, 3, stride=2, padding=1)] + ([nn.BatchNorm2d(4)] if bn else []) + [nn.ReLU()]
    return Classifier(nn.Sequential(*layers), nn.Flatten(), nn.Linear(16, K))


def tiny_data(n_forget: int = B, n_retain: int = B, seed: int = 0) -> UnlearnData:
    g = torch.Generator().manual_seed(seed)
    forget = TensorSet(torch.rand(n_forget, 1, 4, 4, generator=g), torch.randint(0, K, (n_forget,), generator=g))
    retain = TensorSet(torch.rand(n_retain, 1, 4, 4, generator=g), torch.randint(0, K, (n_retain,), generator=g))
    return UnlearnData(forget=forget, retain=retain, num_classes=K, input_range=(0.0, 1.0))


def perturb(model: nn.Module, seed: int, scale: float = 0.5) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def tiny_state(use_labels: bool = True, bn: bool = False, **changes) -> tuple[MixUnlearnState, UnlearnData]:
    """A state whose unlearner, EMA copy and original all differ, with a non-trivial MixBlock."""
    values = dict(tau_gen=0.25, tau_mix=0.5, tau_real=2.0, omega=3.0, sharpen_temperature=0.5, lr=1e-2, lr_gen=3e-2)
    values.update(changes)
    hp = MixUnlearnParams(**values)
    data = tiny_data()
    model = tiny_model(0, bn=bn)
    st = MixUnlearnState(model, hp, K, use_labels=use_labels, sample=data.forget.x)
    perturb(st.unlearner, 1)
    perturb(st.ema, 2)
    perturb(st.block, 3, scale=1.0)
    if bn:
        with torch.no_grad():
            st.ema.features[1].running_mean.fill_(0.3)
            st.ema.features[1].running_var.fill_(2.0)
    return st, data


def tiny_batch(st: MixUnlearnState, data: UnlearnData):
    x_f, x_r = data.forget.x, data.retain.x
    t_f, t_r = st.targets(x_f, data.forget.y), st.targets(x_r, data.retain.y)
    return x_f, x_r, t_f, t_r, st.features(x_f), st.features(x_r)


def adam_first_step(grad: torch.Tensor, lr: float) -> torch.Tensor:
    """The first Adam update: -lr * g / (|g| + eps) (bias-corrected moments m = g, v = g^2)."""
    return -lr * grad / (grad.abs() + ADAM_EPS)


def assert_adam_step_follows(params_before, params_after, grads, lr: float) -> None:
    for p0, p1, g in zip(params_before, params_after, grads):
        sure = g.abs() > 1e-4  # where the gradient is ~0, Adam's direction is numerically undefined
        assert torch.allclose((p1 - p0)[sure], adam_first_step(g, lr)[sure], atol=1e-5), "the step descends another loss"


# --- SimLoss, Sharpen ---------------------------------------------------------------------------

def test_sim_loss_is_one_minus_cosine_on_a_hand_case():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [1.0, 2.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 1.0], [6.0, 8.0], [-1.0, -2.0]])
    expected = torch.tensor([1 - 1 / math.sqrt(2), 1.0, 0.0, 2.0])
    assert torch.allclose(sim_loss(a, b), expected, atol=1e-6)


def test_sharpen_is_power_one_over_t_renormalised():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    # T = 0.5: squares over their sum
    expected = torch.tensor([[0.25, 0.09, 0.04], [0.01, 0.01, 0.64]])
    expected = expected / expected.sum(1, keepdim=True)
    assert torch.allclose(sharpen(p, 0.5), expected, atol=1e-6)
    # T = 0.25: fourth powers
    fourth = p**4
    assert torch.allclose(sharpen(p, 0.25), fourth / fourth.sum(1, keepdim=True), atol=1e-6)


def test_sharpen_sums_to_one_and_lowers_entropy():
    p = torch.softmax(torch.randn(5, 10, generator=torch.Generator().manual_seed(0)), 1)
    s = sharpen(p, 0.3)
    assert torch.allclose(s.sum(1), torch.ones(5), atol=1e-6)
    entropy = lambda q: -(q * q.clamp_min(1e-12).log()).sum(1)  # noqa: E731
    assert bool((entropy(s) < entropy(p)).all())
    assert torch.allclose(sharpen(p, 1.0), p, atol=1e-6)


# --- L_mix and L_real against loops --------------------------------------------------------------

def _probs(seed: int, n: int = B, k: int = 4) -> torch.Tensor:
    return torch.softmax(2 * torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), 1)


@pytest.mark.parametrize("lam, tau", [(0.3, 0.7), (0.8, 2.5), (0.0, 1.0), (1.0, 0.2)])
def test_mix_loss_matches_a_loop_over_the_formula(lam, tau):
    p_mix, t_r, t_f = _probs(0), _probs(1), _probs(2)
    expected = float(ref_mix_loss(p_mix, t_r, t_f, lam, tau))
    assert float(mix_loss(p_mix, t_r, t_f, lam, tau)) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_mix_loss_weights_retain_by_one_minus_lambda_and_forget_by_lambda():
    """A hand case: B = 2, p_mix equal to the retain targets (S^r = 0), orthogonal to the forget targets (S^f = 1)."""
    p_mix = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    t_f = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    lam, tau = 0.25, 0.5
    # sum_k (1 - lam) * 0 - 2 * log(2 * exp(lam * 1 / tau))
    assert float(mix_loss(p_mix, p_mix, t_f, lam, tau)) == pytest.approx(-2 * math.log(2 * math.exp(lam / tau)))
    # and p_mix equal to the forget targets: sum_k (1 - lam) * 1 - 2 * log(2 * exp(0))
    assert float(mix_loss(p_mix, t_f, p_mix, lam, tau)) == pytest.approx(2 * (1 - lam) - 2 * math.log(2))


@pytest.mark.parametrize("tau", [0.4, 3.0])
def test_real_loss_matches_a_loop_over_the_formula(tau):
    p_r, t_r, p_f, t_f = _probs(3), _probs(4), _probs(5), _probs(6)
    expected = float(ref_real_loss(p_r, t_r, p_f, t_f, tau))
    assert float(real_loss(p_r, t_r, p_f, t_f, tau)) == pytest.approx(expected, rel=1e-9, abs=1e-9)


# --- the MixBlock against a per-position reference ------------------------------------------------

def _random_block(channels: int, seed: int) -> MixBlock:
    block = MixBlock(channels)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # weights large enough that attention is far from uniform
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return block


@pytest.mark.parametrize("lam", [0.2, 0.9])
def test_mixblock_matches_a_per_position_reference_2d(lam):
    block = _random_block(4, seed=0)
    g = torch.Generator().manual_seed(1)
    feat_f, feat_r = torch.randn(2, 4, 2, 3, generator=g), torch.randn(2, 4, 2, 3, generator=g)  # h != w
    with torch.no_grad():
        got = block(feat_f, feat_r, lam, (4, 6))
        want = ref_mixblock(block, feat_f, feat_r, lam, (4, 6))
    assert got.shape == (2, 2, 4, 6)
    assert torch.allclose(got.double(), want, atol=1e-5), float((got.double() - want).abs().max())


def test_mixblock_matches_a_per_position_reference_1d():
    block = _random_block(4, seed=2)
    g = torch.Generator().manual_seed(3)
    feat_f, feat_r = torch.randn(2, 4, 5, generator=g), torch.randn(2, 4, 5, generator=g)
    with torch.no_grad():
        got = block(feat_f, feat_r, 0.3, (10,))
        want = ref_mixblock(block, feat_f, feat_r, 0.3, (10,))
    assert got.shape == (2, 2, 10)
    assert torch.allclose(got.double(), want, atol=1e-5), float((got.double() - want).abs().max())


def test_mixblock_without_upsampling_matches_the_reference():
    block = _random_block(6, seed=4)
    g = torch.Generator().manual_seed(5)
    feat_f, feat_r = torch.randn(1, 6, 3, 3, generator=g), torch.randn(1, 6, 3, 3, generator=g)
    with torch.no_grad():
        got = block(feat_f, feat_r, 0.6, (3, 3))
    assert torch.allclose(got.double(), ref_mixblock(block, feat_f, feat_r, 0.6, (3, 3)), atol=1e-5)


def test_mixblock_size_matches_the_paper():
    assert sum(p.numel() for p in MixBlock(256).parameters()) == 66_306  # ResNet-18 stage 3, with the lambda channel
    assert sum(p.numel() for p in MixBlock(32).parameters()) == 1_122  # digits SmallCNN mix layer


def test_mixblock_init_is_small_normal_with_zero_bias():
    block = MixBlock(256)
    for conv in (block.q, block.k, block.v):
        assert torch.all(conv.bias == 0)
        assert float(conv.weight.detach().std()) == pytest.approx(0.01, rel=0.2)


def test_masks_lie_in_0_1_and_sum_to_1():
    block = _random_block(4, seed=6)
    feats = torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(7))
    for lam in (0.0, 0.3, 1.0):
        with torch.no_grad():
            masks = block(feats, feats.flip(0), lam, (4, 4))
        assert masks.shape == (3, 2, 4, 4)
        assert float(masks.min()) >= 0.0 and float(masks.max()) <= 1.0
        assert torch.allclose(masks.sum(1), torch.ones(3, 4, 4), atol=1e-6)


def test_mixed_inputs_are_pixelwise_convex_combinations():
    block = _random_block(4, seed=8)
    g = torch.Generator().manual_seed(9)
    x_f, x_r = torch.rand(3, 2, 4, 4, generator=g), torch.rand(3, 2, 4, 4, generator=g)  # 2 colour channels
    masks = block(torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g), 0.5, (4, 4))
    x_mix = mix_inputs(masks, x_f, x_r)
    assert torch.allclose(x_mix, masks[:, :1] * x_f + masks[:, 1:] * x_r)
    low, high = torch.minimum(x_f, x_r), torch.maximum(x_f, x_r)
    assert bool((x_mix >= low - 1e-6).all() and (x_mix <= high + 1e-6).all())
    assert not torch.allclose(x_mix, x_f) and not torch.allclose(x_mix, x_r)


def test_a_full_forget_mask_gives_the_forget_sample():
    x_f, x_r = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    masks = torch.cat([torch.ones(4, 1, 8, 8), torch.zeros(4, 1, 8, 8)], 1)
    assert torch.equal(mix_inputs(masks, x_f, x_r), x_f)
    assert torch.equal(mix_inputs(masks.flip(1), x_f, x_r), x_r)


# --- the unlearner and generator losses, scored on the right networks ------------------------------

def test_unlearner_minimises_mix_with_tau_mix_plus_omega_real_with_tau_real():
    """L_U = L_mix(theta_U; tau_mix) + omega L_real(theta_U; tau_real), descended by the first Adam step."""
    st, data = tiny_state()
    x_f, x_r, t_f, t_r, feat_f, feat_r = args = tiny_batch(st, data)
    lam, hp = 0.3, st.hp
    masks = st.block(feat_f, feat_r, lam, (4, 4)).detach()
    x_mix = masks[:, :1] * x_f + masks[:, 1:] * x_r
    unlearner = copy.deepcopy(st.unlearner).train()
    p_mix, p_r, p_f = (torch.softmax(unlearner(x), 1) for x in (x_mix, x_r, x_f))
    expected = ref_mix_loss(p_mix, t_r, t_f, lam, hp.tau_mix) + hp.omega * ref_real_loss(p_r, t_r, p_f, t_f, hp.tau_real)
    grads = torch.autograd.grad(expected, list(unlearner.parameters()))
    before = [p.detach().clone() for p in st.unlearner.parameters()]

    loss = st.unlearner_step(*args, lam)

    assert loss == pytest.approx(expected.item(), rel=1e-5)
    assert_adam_step_follows(before, list(st.unlearner.parameters()), grads, hp.lr)


def test_unlearner_step_detaches_the_mask():
    st, data = tiny_state()
    st.unlearner_step(*tiny_batch(st, data), 0.4)
    assert all(p.grad is None for p in st.block.parameters()), "the unlearner loss reached the MixBlock"


def test_generator_maximises_mix_loss_of_the_ema_copy_with_tau_gen():
    """L_gen = -L_mix(theta_EMA; tau_gen) (EMA in eval mode), descended by the first Adam step of the MixBlock."""
    st, data = tiny_state(bn=True)
    x_f, x_r, t_f, t_r, feat_f, feat_r = args = tiny_batch(st, data)
    lam, hp = 0.7, st.hp
    block, ema = copy.deepcopy(st.block), copy.deepcopy(st.ema).eval()
    masks = block(feat_f, feat_r, lam, (4, 4))
    p_mix = torch.softmax(ema(masks[:, :1] * x_f + masks[:, 1:] * x_r), 1)
    expected = -ref_mix_loss(p_mix, t_r, t_f, lam, hp.tau_gen)
    grads = torch.autograd.grad(expected, list(block.parameters()))
    before = [p.detach().clone() for p in st.block.parameters()]

    assert st.generator_loss(*args, lam).item() == pytest.approx(expected.item(), rel=1e-5)
    loss = st.generator_step(*args, lam)

    assert loss == pytest.approx(expected.item(), rel=1e-5)
    assert_adam_step_follows(before, list(st.block.parameters()), grads, hp.lr_gen)


def test_generator_is_not_scored_with_the_unlearner_or_the_original():
    st, data = tiny_state()
    x_f, x_r, t_f, t_r, feat_f, feat_r = args = tiny_batch(st, data)
    with torch.no_grad():
        masks = st.block(feat_f, feat_r, 0.5, (4, 4))
        x_mix = masks[:, :1] * x_f + masks[:, 1:] * x_r
        scored = {name: -float(ref_mix_loss(torch.softmax(getattr(st, name).eval()(x_mix), 1), t_r, t_f, 0.5, st.hp.tau_gen))
                  for name in ("ema", "unlearner", "original")}
        got = float(st.generator_loss(*args, 0.5))
    assert got == pytest.approx(scored["ema"], rel=1e-5)
    assert got != pytest.approx(scored["unlearner"], rel=1e-3) and got != pytest.approx(scored["original"], rel=1e-3)


def test_unlearner_step_changes_only_the_unlearner():
    st, data = tiny_state(bn=True)
    before = {name: copy.deepcopy(getattr(st, name).state_dict()) for name in ("block", "ema", "original", "unlearner")}
    st.unlearner_step(*tiny_batch(st, data), 0.4)
    for name in ("block", "ema", "original"):
        assert all(torch.equal(v, getattr(st, name).state_dict()[k]) for k, v in before[name].items()), name
    assert not all(torch.equal(v, st.unlearner.state_dict()[k]) for k, v in before["unlearner"].items())


def test_generator_step_changes_only_the_mixblock():
    st, data = tiny_state(bn=True)
    before = {name: copy.deepcopy(getattr(st, name).state_dict()) for name in ("block", "ema", "original", "unlearner")}
    st.generator_step(*tiny_batch(st, data), 0.4)
    for name in ("ema", "original", "unlearner"):  # BN buffers included: the EMA is scored in eval mode
        assert all(torch.equal(v, getattr(st, name).state_dict()[k]) for k, v in before[name].items()), name
    assert not all(torch.equal(v, st.block.state_dict()[k]) for k, v in before["block"].items())
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in st.unlearner.parameters())


# --- targets and features come from the frozen original ------------------------------------------

def test_label_agnostic_targets_are_the_sharpened_original_predictions():
    data = tiny_data()
    model = tiny_model(0, bn=True)
    with torch.no_grad():
        model.features[1].running_mean.fill_(0.2)  # eval and train mode of the original differ
    original = copy.deepcopy(model).eval()
    st = MixUnlearnState(model, MixUnlearnParams(sharpen_temperature=0.5), K, use_labels=False, sample=data.forget.x)
    x = data.forget.x
    with torch.no_grad():
        p = torch.softmax(original(x), 1)
    expected = p**2 / (p**2).sum(1, keepdim=True)  # T = 0.5
    assert torch.allclose(st.targets(x, None), expected, atol=1e-6)
    perturb(st.unlearner, 5)  # the unlearner moves; targets and features must not
    perturb(st.ema, 6)
    assert torch.allclose(st.targets(x, None), expected, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(st.features(x), original.mix_features(x), atol=1e-6)


def test_label_aware_targets_are_one_hot():
    st, data = tiny_state(use_labels=True)
    assert torch.equal(st.targets(data.forget.x, data.forget.y), torch.eye(K)[data.forget.y])


def test_ema_follows_its_formula_and_copies_bn_buffers():
    st, data = tiny_state(bn=True, ema_momentum=0.9)
    ema_before = [p.detach().clone() for p in st.ema.parameters()]
    st.unlearner_step(*tiny_batch(st, data), 0.4)  # train mode: the unlearner's BN buffers move
    st.update_ema()
    for e0, e1, u in zip(ema_before, st.ema.parameters(), st.unlearner.parameters()):
        assert torch.allclose(e1, 0.9 * e0 + 0.1 * u, atol=1e-6)
    bn_e, bn_u = st.ema.features[1], st.unlearner.features[1]
    assert torch.equal(bn_e.running_mean, bn_u.running_mean) and torch.equal(bn_e.running_var, bn_u.running_var)
    assert not torch.allclose(bn_u.running_mean, torch.full_like(bn_u.running_mean, 0.3))


# --- the schedule -------------------------------------------------------------------------------

def schedule_params(**changes) -> MixUnlearnParams:
    values = dict(epochs=3, batch_size=5, gen_interval=3, lr=1e-2, lr_gen=3e-2, ema_momentum=0.9)
    values.update(changes)
    return MixUnlearnParams(**values)


def reference_run(original: nn.Module, data: UnlearnData, hp: MixUnlearnParams, seed: int, use_labels: bool) -> MixUnlearnState:
    """docs/methods.md#mixunlearn-schedule, written out: per iteration t draw B_f, B_r (cycled, equal size B, no partial
    batch), pi, lambda_u and lambda_g ~ Beta(alpha, alpha); targets and features from theta_o; unlearner
    step with retain samples, targets and features permuted by pi; a generator step when t mod k_gen = 0;
    then the EMA update. The draws use the seeded generators of the Method contract in this order:
    forget order per epoch, retain order per pass, pi per batch (torch); lambdas (numpy)."""
    torch.manual_seed(seed)
    st = MixUnlearnState(copy.deepcopy(original).train(), hp, data.num_classes, use_labels, data.forget.x)
    g, rng = torch.Generator().manual_seed(seed), np.random.RandomState(seed)
    n_f, n_r = len(data.forget), len(data.retain)
    size = min(hp.batch_size, n_f, n_r)
    retain_order, retain_pos, t = None, n_r, 0
    for _ in range(hp.epochs):
        order = torch.randperm(n_f, generator=g)
        for start in range(0, n_f - size + 1, size):
            idx_f = order[start : start + size]
            if retain_pos + size > n_r:
                retain_order, retain_pos = torch.randperm(n_r, generator=g), 0
            idx_r, retain_pos = retain_order[retain_pos : retain_pos + size], retain_pos + size
            pi = torch.randperm(size, generator=g)
            lam_u, lam_g = float(rng.beta(hp.alpha, hp.alpha)), float(rng.beta(hp.alpha, hp.alpha))
            x_f, x_r = data.forget.x[idx_f], data.retain.x[idx_r][pi]
            y_f, y_r = (data.forget.y[idx_f], data.retain.y[idx_r][pi]) if use_labels else (None, None)
            batch = (x_f, x_r, st.targets(x_f, y_f), st.targets(x_r, y_r), st.features(x_f), st.features(x_r))
            st.unlearner_step(*batch, lam_u)
            if t % hp.gen_interval == 0:
                st.generator_step(*batch, lam_g)
            st.update_ema()
            t += 1
    return st


@pytest.mark.parametrize("method", [MixUnlearn, MixUnlearnAgnostic])
def test_unlearn_follows_the_schedule_written_out(method):
    data = tiny_data(n_forget=23, n_retain=12)  # retain cycled; 3 forget samples dropped per epoch
    original, hp = tiny_model(4, bn=True), schedule_params()
    got = method().run(original, data, hp, Context(seed=7))
    want = reference_run(original, data, hp, seed=7, use_labels=method.use_labels)
    assert state_equal(got, want.unlearner)


@pytest.mark.parametrize("gen_interval, expected", [(1, 12), (3, 4), (5, 3)])
def test_generator_steps_at_t_mod_k_gen_zero(gen_interval, expected):
    """12 iterations t = 0..11: generator steps at t = 0, k, 2k, ..."""
    data = tiny_data(n_forget=23, n_retain=40)  # 4 full batches of 5 per epoch
    ctx = Context(seed=0)
    MixUnlearn().run(tiny_model(0), data, schedule_params(gen_interval=gen_interval), ctx)
    assert ctx.extras["unlearner_steps"] == 12
    assert ctx.extras["generator_steps"] == expected


@pytest.mark.parametrize("n_forget, n_retain, steps_per_epoch", [(23, 40, 4), (23, 7, 4), (23, 3, 7), (4, 40, 1)])
def test_batches_have_equal_size_and_the_last_partial_batch_is_dropped(n_forget, n_retain, steps_per_epoch):
    """B = min(batch_size, |D_f|, |D_r|); the smaller set is cycled; floor(|D_f| / B) steps per pass over D_f."""
    ctx = Context(seed=0)
    MixUnlearn().run(tiny_model(0), tiny_data(n_forget, n_retain), schedule_params(epochs=2), ctx)
    assert ctx.extras["unlearner_steps"] == 2 * steps_per_epoch


def test_retain_targets_follow_the_pairing():
    """Mixed sample k is scored against the retain target of pi(k), the sample it was mixed with.

    Hand case: a mask that keeps only the retain sample, a network that outputs its own target exactly,
    lam = 0: with targets following the pairing L_mix = -B log B; with unpermuted targets it is larger."""
    n = 4
    x_r = torch.eye(n).reshape(n, 1, 2, 2)  # retain sample j is the one-hot of class j
    t_r = torch.eye(n)
    pi = torch.tensor([2, 0, 3, 1])
    x_mix = mix_inputs(torch.cat([torch.zeros(n, 1, 2, 2), torch.ones(n, 1, 2, 2)], 1), torch.zeros(n, 1, 2, 2), x_r[pi])
    p_mix = torch.softmax(20 * x_mix.flatten(1), 1)  # ~ the one-hot of x_mix
    assert float(mix_loss(p_mix, t_r[pi], t_r, 0.0, 1.0)) == pytest.approx(-n * math.log(n), abs=1e-6)
    assert float(mix_loss(p_mix, t_r, t_r, 0.0, 1.0)) == pytest.approx(n - n * math.log(n), abs=1e-6)


def test_label_agnostic_mode_never_reads_labels():
    data = tiny_data(n_forget=12, n_retain=12)
    no_labels = dataclasses.replace(
        data,
        forget=TensorSet(data.forget.x, torch.full_like(data.forget.y, -1)),
        retain=TensorSet(data.retain.x, torch.full_like(data.retain.y, -1)),
    )
    hp = schedule_params(epochs=1)
    a = MixUnlearnAgnostic().run(tiny_model(0), no_labels, hp, Context(seed=1))
    b = MixUnlearnAgnostic().run(tiny_model(0), data, hp, Context(seed=1))
    assert state_equal(a, b)


def test_runs_on_the_digits_cnn_and_1d_sequences(digits_refs):
    from ray_unlearn.models import build_model

    model = build_model("cnn1d", (1, 40), 10)
    feats = model.mix_features(torch.randn(3, 1, 40))
    masks = MixBlock(32)(feats, feats, 0.5, (40,))
    assert masks.shape == (3, 2, 40) and torch.allclose(masks.sum(1), torch.ones(3, 40))
    data = unlearn_data(digits_refs)
    small = dataclasses.replace(data, forget=data.forget.subset(torch.arange(32)), retain=data.retain.subset(torch.arange(64)))
    out = MixUnlearn().run(digits_refs.model("original", torch.device("cpu")), small, quick_params("mixunlearn", epochs=1), Context(seed=0))
    assert all(torch.isfinite(p).all() for p in out.parameters())
