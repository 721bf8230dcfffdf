"""MixUnlearn (METHODS.md §5): the MixBlock, the losses, the separate gradient paths, the EMA."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ray_unlearn.data.base import TensorSet
from ray_unlearn.methods import Context
from ray_unlearn.methods.mixunlearn import (
    MixBlock,
    MixUnlearnAgnostic,
    MixUnlearnState,
    mix_inputs,
    mix_loss,
    sharpen,
)

from .common import quick_params, state_equal, unlearn_data

B = 16


@pytest.fixture()
def state(digits_refs):
    torch.manual_seed(0)
    model = digits_refs.model("original", torch.device("cpu")).train()
    hp = quick_params("mixunlearn", lr=1e-3)
    data = unlearn_data(digits_refs)
    return MixUnlearnState(model, hp, 10, use_labels=True, sample=data.forget.x), data


def batch(state, data, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randperm(len(data.forget), generator=g)[:B]
    r = torch.randperm(len(data.retain), generator=g)[:B]
    x_f, y_f, x_r, y_r = data.forget.x[f], data.forget.y[f], data.retain.x[r], data.retain.y[r]
    return x_f, x_r, state.targets(x_f, y_f), state.targets(x_r, y_r), state.features(x_f), state.features(x_r)


def test_mixblock_size_matches_the_paper():
    assert sum(p.numel() for p in MixBlock(256).parameters()) == 66_306  # ResNet-18 stage 3, with the lambda channel
    assert sum(p.numel() for p in MixBlock(32).parameters()) == 1_122  # digits SmallCNN mix layer


def test_masks_lie_in_0_1_and_sum_to_1(state):
    st, data = state
    args = batch(st, data)
    for lam in (0.0, 0.3, 1.0):
        masks = st.block(args[4], args[5], lam, (8, 8))
        assert masks.shape == (B, 2, 8, 8)
        assert float(masks.min()) >= 0.0 and float(masks.max()) <= 1.0
        assert torch.allclose(masks.sum(1), torch.ones(B, 8, 8), atol=1e-6)


def test_mixed_inputs_are_pixelwise_convex_combinations(state):
    st, data = state
    x_f, x_r, *_, feat_f, feat_r = batch(st, data)
    with torch.no_grad():
        for p in st.block.parameters():  # a non-trivial mask
            p.normal_(0, 1.0)
    x_mix = mix_inputs(st.block(feat_f, feat_r, 0.5, (8, 8)), x_f, x_r)
    low, high = torch.minimum(x_f, x_r), torch.maximum(x_f, x_r)
    assert bool((x_mix >= low - 1e-6).all() and (x_mix <= high + 1e-6).all())
    assert not torch.allclose(x_mix, x_f) and not torch.allclose(x_mix, x_r)


def test_a_full_forget_mask_gives_the_forget_sample():
    x_f, x_r = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    masks = torch.cat([torch.ones(4, 1, 8, 8), torch.zeros(4, 1, 8, 8)], 1)
    assert torch.equal(mix_inputs(masks, x_f, x_r), x_f)


def test_sharpen_sums_to_one_and_lowers_entropy():
    p = torch.softmax(torch.randn(5, 10), 1)
    s = sharpen(p, 0.3)
    assert torch.allclose(s.sum(1), torch.ones(5), atol=1e-6)
    entropy = lambda q: -(q * q.clamp_min(1e-12).log()).sum(1)  # noqa: E731
    assert bool((entropy(s) < entropy(p)).all())
    assert torch.allclose(sharpen(p, 1.0), p, atol=1e-6)


def test_unlearner_step_changes_only_the_unlearner(state):
    st, data = state
    block_before = {k: v.clone() for k, v in st.block.state_dict().items()}
    ema_before = {k: v.clone() for k, v in st.ema.state_dict().items()}
    original_before = {k: v.clone() for k, v in st.original.state_dict().items()}
    unlearner_before = {k: v.clone() for k, v in st.unlearner.state_dict().items()}
    st.unlearner_step(*batch(st, data), 0.4)
    assert all(torch.equal(v, st.block.state_dict()[k]) for k, v in block_before.items())
    assert all(torch.equal(v, st.ema.state_dict()[k]) for k, v in ema_before.items())
    assert all(torch.equal(v, st.original.state_dict()[k]) for k, v in original_before.items())
    assert not all(torch.equal(v, st.unlearner.state_dict()[k]) for k, v in unlearner_before.items())


def test_generator_step_changes_only_the_mixblock(state):
    st, data = state
    nets = {name: {k: v.clone() for k, v in getattr(st, name).state_dict().items()} for name in ("unlearner", "ema", "original")}
    block_before = {k: v.clone() for k, v in st.block.state_dict().items()}
    st.generator_step(*batch(st, data), 0.4)
    for name, before in nets.items():
        assert all(torch.equal(v, getattr(st, name).state_dict()[k]) for k, v in before.items()), name
    assert not all(torch.equal(v, st.block.state_dict()[k]) for k, v in block_before.items())
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in st.unlearner.parameters())


def test_generator_moves_adversarially_against_the_ema_unlearner(state):
    """After generator steps, the EMA unlearner's L_mix on the same batch is higher."""
    st, data = state
    x_f, x_r, t_f, t_r, feat_f, feat_r = args = batch(st, data)

    def ema_mix_loss() -> float:  # computed here, independently of the method's own loss function
        with torch.no_grad():
            x_mix = mix_inputs(st.block(feat_f, feat_r, 0.5, (8, 8)), x_f, x_r)
            p = torch.softmax(st.ema(x_mix), 1)
        return mix_loss(p, t_r, t_f, 0.5, st.hp.tau_gen).item()

    for g in st.opt_block.param_groups:
        g["lr"] = 0.05
    before = ema_mix_loss()
    for _ in range(5):
        st.generator_step(*args, 0.5)
    assert ema_mix_loss() > before, "the MixBlock must increase L_mix of the EMA copy (minimise -L_mix)"


def test_unlearner_step_lowers_its_loss_direction(state):
    st, data = state
    args = batch(st, data)
    masks = st.block(args[4], args[5], 0.5, (8, 8)).detach()
    x_mix = mix_inputs(masks, args[0], args[1])

    def loss():
        with torch.no_grad():
            p = torch.softmax(st.unlearner.eval()(x_mix), 1)
        return mix_loss(p, args[3], args[2], 0.5, 1.0).item()

    before = loss()
    for _ in range(5):
        st.unlearner_step(*args, 0.5)
    assert loss() < before


def test_ema_follows_its_formula(state):
    st, data = state
    ema_before = [p.clone() for p in st.ema.parameters()]
    st.unlearner_step(*batch(st, data), 0.4)
    st.update_ema()
    m = st.hp.ema_momentum
    for e0, e1, u in zip(ema_before, st.ema.parameters(), st.unlearner.parameters()):
        assert torch.allclose(e1, m * e0 + (1 - m) * u, atol=1e-7)
    for be, bu in zip(st.ema.buffers(), st.unlearner.buffers()):
        assert torch.equal(be, bu)
    moved = [float((e1 - e0).abs().max()) for e0, e1 in zip(ema_before, st.ema.parameters())]
    drift = [float((u - e1).abs().max()) for e1, u in zip(st.ema.parameters(), st.unlearner.parameters())]
    assert max(moved) > 0 and max(drift) > max(moved), "the EMA trails the unlearner"


def test_targets_follow_the_permutation_pairing(state):
    """Mixed sample k is scored against the retain target of pi(k), not of k (a bug in the released code)."""
    st, data = state
    x_f, x_r, t_f, t_r, feat_f, feat_r = batch(st, data)
    perm = torch.arange(B).flip(0)
    masks = torch.cat([torch.zeros(B, 1, 8, 8), torch.ones(B, 1, 8, 8)], 1)  # x_mix = the paired retain sample
    x_mix = mix_inputs(masks, x_f, x_r[perm])
    p = torch.softmax(st.original(x_mix), 1)
    paired = mix_loss(p, t_r[perm], t_f, 0.0, 1.0).item()
    unpaired = mix_loss(p, t_r, t_f, 0.0, 1.0).item()
    assert paired < unpaired


def test_label_agnostic_mode_never_reads_labels(digits_refs):
    data = unlearn_data(digits_refs)
    no_labels = dataclasses.replace(
        data,
        forget=TensorSet(data.forget.x, torch.full_like(data.forget.y, -1)),
        retain=TensorSet(data.retain.x, torch.full_like(data.retain.y, -1)),
    )
    hp = quick_params("mixunlearn_agnostic")
    a = MixUnlearnAgnostic().run(digits_refs.model("original", torch.device("cpu")), no_labels, hp, Context(seed=1))
    b = MixUnlearnAgnostic().run(digits_refs.model("original", torch.device("cpu")), data, hp, Context(seed=1))
    assert state_equal(a, b)


def test_works_on_1d_sequences():
    from ray_unlearn.models import build_model

    model = build_model("cnn1d", (1, 40), 10)
    block = MixBlock(32)
    feats = model.mix_features(torch.randn(3, 1, 40))
    masks = block(feats, feats, 0.5, (40,))
    assert masks.shape == (3, 2, 40) and torch.allclose(masks.sum(1), torch.ones(3, 40))
