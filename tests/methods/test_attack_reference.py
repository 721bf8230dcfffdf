"""AMUN's step A against a brute-force PGD written here from docs/methods.md#step-a-the-adversarial-set, on tiny hand-set models.

The reference runs one sample at a time in a plain loop: no random start, step a = eps/10 along
g/||g||, projection to the eps-ball, clipping only with a declared range, stop at the first
misclassified iterate, after S steps eps <- 2 eps (a <- eps/10) continuing from the current iterate;
without a declared range eps stops doubling at MAX_RELATIVE_EPSILON * ||x|| (attacks.py's documented deviation).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ray_unlearn.methods.attacks import MAX_RELATIVE_EPSILON, pgd_l2_nearest

EPS0, STEPS, DOUBLINGS = 0.05, 12, 6  # S > 10: after 10 steps of eps/10 the projection binds


def reference_pgd(model: nn.Module, x: torch.Tensor, y: int, clip: bool) -> tuple[torch.Tensor | None, int, float]:
    """(x_adv or None if not found, y_adv, final eps) for one sample."""
    with torch.no_grad():
        pred0 = int(model(x[None]).argmax())
    if pred0 != y:
        return x.clone(), pred0, EPS0
    eps, cur = EPS0, x.clone()
    for round_ in range(DOUBLINGS + 1):
        for _ in range(STEPS):
            xa = cur.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xa[None]), torch.tensor([y])), xa)
            cur = cur + (eps / 10) * g / g.norm()
            delta = cur - x
            if delta.norm() > eps:
                delta = delta * (eps / delta.norm())
            cur = x + delta
            if clip:
                cur = cur.clamp(0.0, 1.0)
            with torch.no_grad():
                pred = int(model(cur[None]).argmax())
            if pred != y:
                return cur, pred, eps
        if round_ == DOUBLINGS or (not clip and 2 * eps > MAX_RELATIVE_EPSILON * float(x.norm())):
            break  # without a range the radius stops at the documented relative cap
        eps *= 2
    return None, y, eps


@pytest.fixture(scope="module")
def linear_case():
    """A 3-class linear model on [0, 1]^3 and 40 inputs, 3 of them labelled with a class the model does not predict."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, -1.0, 0.5], [-1.0, 2.5, -0.5], [0.0, -1.0, 3.0]]))
        model.bias.copy_(torch.tensor([0.2, -0.1, -0.6]))
    x = torch.rand(40, 3, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 3  # already misclassified by the model
    return model.eval(), x, y


@pytest.mark.parametrize("input_range", [(0.0, 1.0), None])
def test_pgd_matches_a_per_sample_reference_loop(linear_case, input_range):
    model, x, y = linear_case
    a = pgd_l2_nearest(model, x, y, epsilon=EPS0, steps=STEPS, max_doublings=DOUBLINGS, input_range=input_range)
    clip = input_range is not None
    for i in range(len(x)):
        ref_x, ref_y, ref_eps = reference_pgd(model, x[i], int(y[i]), clip)
        assert bool(a.found[i]) == (ref_x is not None), i
        assert a.epsilon[i].item() == pytest.approx(ref_eps, rel=1e-6), i
        if ref_x is not None:
            assert torch.allclose(a.x_adv[i], ref_x, atol=1e-6), (i, a.x_adv[i], ref_x)
            assert int(a.y_adv[i]) == ref_y, i
    # the case is not vacuous: doublings happen, and (with a range) clipping changes some results
    assert int((a.epsilon > EPS0 * 1.5).sum()) >= 5
    if clip:
        unclipped = [reference_pgd(model, x[i], int(y[i]), False)[0] for i in range(len(x))]
        assert any(u is not None and not torch.allclose(u, a.x_adv[i], atol=1e-6) for i, u in enumerate(unclipped))


def test_samples_the_model_already_misclassifies_keep_their_input_and_predicted_label(linear_case):
    model, x, y = linear_case
    a = pgd_l2_nearest(model, x, y, epsilon=EPS0, steps=STEPS, max_doublings=DOUBLINGS)
    with torch.no_grad():
        pred = model(x).argmax(1)
    wrong = pred != y
    assert int(wrong.sum()) == 3
    assert torch.equal(a.x_adv[wrong], x[wrong]) and torch.equal(a.y_adv[wrong], pred[wrong])
    assert torch.equal(a.original_pred, pred) and bool(a.found[wrong].all())
    # docs/methods.md#amun: every found x_adv is misclassified as y_adv, within its radius, on the eps0 * 2^k grid
    with torch.no_grad():
        assert torch.equal(model(a.x_adv[a.found]).argmax(1), a.y_adv[a.found])
    assert bool((a.y_adv[a.found & ~wrong] != y[a.found & ~wrong]).all())
    assert bool(((a.x_adv - x).flatten(1).norm(dim=1) <= a.epsilon + 1e-5).all())
    k = torch.log2(a.epsilon / EPS0)
    assert torch.allclose(k, k.round(), atol=1e-5)


class Saturated(nn.Module):
    """Two classes split by the line x0 = 0.7, with logits so steep that the float32 CE gradient is exactly 0 far from it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 2000.0 * (x[:, 0] - 0.7)
        return torch.stack([-s, s], 1)


def test_vanishing_gradients_take_seeded_random_steps_and_still_find_a_twin():
    x = torch.tensor([[0.6, 2.0], [0.69999, 2.0]])  # far (gradient 0) / next to the boundary (gradient alive)
    y = torch.tensor([0, 0])
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(Saturated()(xr), y, reduction="sum"), xr)
    assert float(g[0].norm()) == 0.0 and float(g[1].norm()) > 0.0
    runs = [pgd_l2_nearest(Saturated(), x, y, epsilon=0.05, steps=20, input_range=None) for _ in range(2)]
    a = runs[0]
    assert bool(a.found.all())
    assert int(a.random_steps[0]) > 0 and int(a.random_steps[1]) == 0
    assert int(a.y_adv[0]) == 1 and float(a.distance[0]) <= float(a.epsilon[0]) + 1e-6
    for k, v in a.to_dict().items():
        assert torch.equal(v, runs[1].to_dict()[k]), f"{k}: the attack must be deterministic"


class TrainModeSensitive(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3))
        with torch.no_grad():
            self.net[1].running_mean.fill_(0.3)
            self.net[1].running_var.fill_(2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_attack_runs_every_forward_in_eval_mode_and_leaves_bn_statistics_alone():
    torch.manual_seed(0)
    model = TrainModeSensitive().train()
    before = copy.deepcopy(model.state_dict())
    modes: list[bool] = []
    for m in model.modules():
        m.register_forward_pre_hook(lambda mod, args: modes.append(mod.training))
    x, y = torch.rand(16, 4), torch.arange(16) % 3
    pgd_l2_nearest(model, x, y, epsilon=0.1, steps=5, max_doublings=2, input_range=None)
    assert len(modes) > 16 and not any(modes), "every forward of the attack sees module.training == False"
    assert model.training, "the caller's mode is restored"
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed during the attack"


def test_attack_inside_a_bf16_autocast_region_computes_in_float32(linear_case):
    model, x, y = linear_case
    plain = pgd_l2_nearest(model, x, y, epsilon=EPS0, steps=STEPS, max_doublings=DOUBLINGS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = pgd_l2_nearest(model, x, y, epsilon=EPS0, steps=STEPS, max_doublings=DOUBLINGS)
    for k, v in plain.to_dict().items():
        assert torch.equal(v, inside.to_dict()[k]), k
