"""Each baseline's update rule (docs/methods.md) against a reference written here from its formula.

Tiny hand-made models and tensors: one full batch per pass, so a method's step can be replayed
with torch.optim.SGD and the loss as docs/methods.md states it, and compared to atol 1e-6.
"""

from __future__ import annotations

import collections
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ray_unlearn.data.base import TensorSet
from ray_unlearn.hparams import make_params
from ray_unlearn.methods import METHODS, Context, UnlearnData
from ray_unlearn.methods.attacks import pgd_l2_nearest
from ray_unlearn.methods.saliency import SaliencyMask
from ray_unlearn.methods.scrub import distill_divergence
from ray_unlearn.train import predict_logits

from .common import TrainingRecorder, row_keys, unlearn_data

K = 3
LR, WD, MOMENTUM = 0.1, 5e-4, 0.9


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(4, K)


def tiny_data(n_forget: int = 6, n_retain: int = 8, seed: int = 1) -> UnlearnData:
    g = torch.Generator().manual_seed(seed)
    forget = TensorSet(torch.randn(n_forget, 4, generator=g), torch.randint(0, K, (n_forget,), generator=g))
    retain = TensorSet(torch.randn(n_retain, 4, generator=g), torch.randint(0, K, (n_retain,), generator=g))
    return UnlearnData(forget=forget, retain=retain, num_classes=K, input_range=None)


def image_data(n_forget: int, n_retain: int, classes: int = 4, seed: int = 2) -> UnlearnData:
    g = torch.Generator().manual_seed(seed)
    forget = TensorSet(torch.rand(n_forget, 1, 8, 8, generator=g), torch.randint(0, classes, (n_forget,), generator=g))
    retain = TensorSet(torch.rand(n_retain, 1, 8, 8, generator=g), torch.randint(0, classes, (n_retain,), generator=g))
    return UnlearnData(forget=forget, retain=retain, num_classes=classes, input_range=(0.0, 1.0), augment="crop_flip")


def image_model(classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))


def run(name: str, model: nn.Module, data: UnlearnData, ctx: Context | None = None, **values) -> nn.Module:
    params = make_params(METHODS[name].Params, values)
    return METHODS[name]().run(model, data, params, ctx or Context(seed=0))


def sgd_replay(model: nn.Module, losses) -> nn.Module:
    """Apply one SGD step (lr, momentum, wd as the methods' defaults) per loss closure, in order."""
    model = copy.deepcopy(model).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    for loss in losses:
        opt.zero_grad()
        loss(model).backward()
        opt.step()
    return model


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6, rtol=0), f"{name}: {pa} vs {pb}"


def kl_teacher_student(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), batch mean, written out."""
    p_t = torch.softmax(teacher / t, 1)
    return t * t * (p_t * (torch.log(p_t) - torch.log_softmax(student / t, 1))).sum(1).mean()


# ---- signs and weights of the loss terms ------------------------------------------------------


def test_gradient_ascent_step_descends_on_minus_forget_ce():
    data = tiny_data()
    model = linear_model()
    got = run("gradient_ascent", model, data, lr=LR, epochs=1, batch_size=64)
    f = data.forget
    want = sgd_replay(model, [lambda m: -F.cross_entropy(m(f.x), f.y)])
    assert_same_weights(got, want)


def test_optimizer_adam_replaces_sgd_with_adam_at_the_same_lr_and_weight_decay():
    """`optimizer: adam` (for Adam-trained originals): two full-batch steps match torch's Adam
    (lr, wd as given, default betas), and differ from what SGD would have done."""
    data = tiny_data()
    model = linear_model()
    got = run("gradient_ascent", model, data, lr=LR, epochs=2, batch_size=64, optimizer="adam")
    want = copy.deepcopy(model).train()
    opt = torch.optim.Adam(want.parameters(), lr=LR, weight_decay=WD)
    for _ in range(2):
        opt.zero_grad()
        (-F.cross_entropy(want(data.forget.x), data.forget.y)).backward()
        opt.step()
    assert_same_weights(got, want)
    f = data.forget
    sgd = sgd_replay(model, [lambda m: -F.cross_entropy(m(f.x), f.y)] * 2)
    assert not torch.allclose(got.weight, sgd.weight, atol=1e-3)


def test_gradient_ascent_clips_the_gradient_norm_at_10():
    data = tiny_data()
    data.forget.x.mul_(100.0)  # a gradient norm far above 10
    model = linear_model()
    got = run("gradient_ascent", model, data, lr=LR, epochs=1, batch_size=64)
    want = copy.deepcopy(model).train()
    opt = torch.optim.SGD(want.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    (-F.cross_entropy(want(data.forget.x), data.forget.y)).backward()
    norm = torch.cat([p.grad.flatten() for p in want.parameters()]).norm()
    assert norm > 20
    for p in want.parameters():
        p.grad.mul_(10.0 / (norm + 1e-6))
    opt.step()
    assert_same_weights(got, want)


def test_neggrad_plus_step_is_beta_retain_ce_minus_one_minus_beta_forget_ce():
    data = tiny_data()
    model = linear_model()
    got = run("neggrad_plus", model, data, beta=0.7, lr=LR, epochs=1, batch_size=64)
    f, r = data.forget, data.retain
    want = sgd_replay(model, [lambda m: 0.7 * F.cross_entropy(m(r.x), r.y) - 0.3 * F.cross_entropy(m(f.x), f.y)])
    assert_same_weights(got, want)


def test_distill_divergence_is_t_squared_kl_from_teacher_to_student_on_hand_computed_logits():
    student = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, -1.0]])
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    t = 2.0

    def softmax(row):
        e = [math.exp(v / t) for v in row]
        return [v / sum(e) for v in e]

    kl = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        ps, pt = softmax(s_row), softmax(t_row)
        kl += sum(a * math.log(a / b) for a, b in zip(pt, ps))
    expected = t * t * kl / 2
    assert distill_divergence(student, teacher, t).item() == pytest.approx(expected, abs=1e-6)
    assert distill_divergence(teacher, teacher, t).item() == pytest.approx(0.0, abs=1e-7)


def test_scrub_max_passes_minimise_minus_d_and_min_passes_gamma_ce_plus_alpha_d_against_the_frozen_original():
    """msteps = 2, E = 2, one batch per pass: steps max, min, max, min; the teacher is theta_o throughout."""
    data = tiny_data()
    model = linear_model()
    t, alpha, gamma = 2.0, 0.5, 0.8
    got = run("scrub", model, data, msteps=2, epochs=2, lr=LR, temperature=t, alpha=alpha, gamma=gamma,
              batch_size=64, forget_batch_size=64)
    teacher = copy.deepcopy(model).eval()
    f, r = data.forget, data.retain
    with torch.no_grad():
        tf, tr = teacher(f.x), teacher(r.x)

    def max_step(m):
        return -kl_teacher_student(m(f.x), tf, t)

    def min_step(m):
        logits = m(r.x)
        return gamma * F.cross_entropy(logits, r.y) + alpha * kl_teacher_student(logits, tr, t)

    want = sgd_replay(model, [max_step, min_step, max_step, min_step])
    assert_same_weights(got, want)


def test_l1_sparse_weight_decays_linearly_per_epoch_from_gamma():
    """gamma_e = gamma * (1 - e/E) for e = 0..E-1 (E = 3: gamma, 2/3 gamma, 1/3 gamma)."""
    data = tiny_data()
    model = linear_model()
    gamma = 0.05
    got = run("l1_sparse", model, data, gamma=gamma, lr=LR, epochs=3, batch_size=64)
    r = data.retain

    def step(weight):
        return lambda m: F.cross_entropy(m(r.x), r.y) + weight * sum(p.abs().sum() for p in m.parameters())

    want = sgd_replay(model, [step(gamma * (1 - e / 3)) for e in range(3)])
    assert_same_weights(got, want)


# ---- learning-rate schedules ------------------------------------------------------------------


def record_lrs(name: str, model: nn.Module, data: UnlearnData, **values) -> list[list[float]]:
    """The learning rate of every optimiser step, grouped by the method's reported epochs."""
    per_epoch: list[list[float]] = [[]]
    handle = register_optimizer_step_pre_hook(  # every optimiser, globally
        lambda opt, args, kwargs: per_epoch[-1].append(opt.param_groups[0]["lr"])
    )
    try:
        run(name, model, data, Context(seed=0, on_epoch=lambda *a: per_epoch.append([])), **values)
    finally:
        handle.remove()
    return per_epoch[:-1]


def test_scrub_lr_is_divided_by_10_after_epochs_3_5_and_9():
    lrs = record_lrs("scrub", linear_model(), tiny_data(), msteps=2, epochs=10, lr=0.01, batch_size=64, forget_batch_size=2)
    decays = [sum(e > m for m in (3, 5, 9)) for e in range(1, 11)]
    assert [len(e) for e in lrs] == [4, 4] + [1] * 8, "3 max steps (6 forget rows, batch 2) + 1 min step in epochs 1-2, then min steps only"
    for e, (step_lrs, k) in enumerate(zip(lrs, decays), start=1):
        assert step_lrs == pytest.approx([0.01 * 0.1**k] * len(step_lrs), rel=1e-9), f"epoch {e}"


def test_amun_lr_is_multiplied_by_gamma_every_decay_step_epochs():
    data = tiny_data()
    lrs = record_lrs("amun", linear_model(), data, lr=0.01, gamma=0.5, decay_step=2, epochs=5, epsilon=0.1, steps=5, batch_size=64)
    assert [e[0] for e in lrs] == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])


# ---- which network produces the targets, which sets are augmented -----------------------------


def test_gradient_ascent_never_augments_the_forget_set(monkeypatch):
    data = image_data(n_forget=20, n_retain=4)
    model = image_model()
    rec = TrainingRecorder(model, monkeypatch)
    run("gradient_ascent", model, data, epochs=2, batch_size=8)
    forget = set(row_keys(data.forget.x))
    assert len(rec.inputs) == 6 and all(set(row_keys(x)) <= forget for x in rec.inputs)


@pytest.mark.parametrize("name", ["random_label", "salun"])
@pytest.mark.parametrize("mode", ["sequential", "mixed"])
def test_random_labels_are_redrawn_each_epoch_on_an_unaugmented_forget_pass(monkeypatch, name, mode):
    data = image_data(n_forget=24, n_retain=40)
    model = image_model()
    rec = TrainingRecorder(model, monkeypatch)
    ctx = Context(seed=0, on_epoch=rec.mark)
    run(name, model, data, ctx, epochs=3, batch_size=8, exclude_true=True, mode=mode)
    index = {k: i for i, k in enumerate(row_keys(data.forget.x))}
    retain_rows = set(row_keys(data.retain.x))
    labels_per_epoch = []
    for pairs in rec.epochs():
        labels = torch.full((len(data.forget),), -1)
        kinds = []  # per batch: set of {"f", "r", "aug"}
        for x, y in pairs:
            kind = set()
            for key, label in zip(row_keys(x), y.tolist()):
                if key in index:
                    assert labels[index[key]] == -1, "each forget row once per epoch"
                    labels[index[key]] = label
                    kind.add("f")
                else:
                    kind.add("r" if key in retain_rows else "aug")
            kinds.append(kind)
        assert bool((labels >= 0).all()), "every forget row reaches the loss unaugmented"
        assert not bool((labels == data.forget.y).any()), "exclude_true: no forget row keeps its label"
        assert "aug" in set().union(*kinds), "the retain rows are augmented (else this test is vacuous)"
        if mode == "sequential":  # 3 forget batches, then 5 retain batches
            assert [k == {"f"} for k in kinds] == [True] * 3 + [False] * 5
        else:
            assert any("f" in k and len(k) > 1 for k in kinds), "mixed: forget and retain rows share batches"
        labels_per_epoch.append(labels)
    assert len(labels_per_epoch) == 3
    assert not torch.equal(labels_per_epoch[0], labels_per_epoch[1]), "labels are drawn anew every epoch"
    assert not torch.equal(labels_per_epoch[1], labels_per_epoch[2])


def test_random_labels_without_exclude_true_are_uniform_over_all_classes(monkeypatch):
    data = image_data(n_forget=4000, n_retain=8, classes=4)
    model = image_model(4)
    rec = TrainingRecorder(model, monkeypatch)
    run("random_label", model, data, Context(seed=0, on_epoch=rec.mark), epochs=1, batch_size=4000, exclude_true=False)
    index = {k: i for i, k in enumerate(row_keys(data.forget.x))}
    x, y = rec.epochs()[0][0]
    assert len(y) == 4000 and all(k in index for k in row_keys(x))
    true = data.forget.y[[index[k] for k in row_keys(x)]]
    counts = torch.bincount(y, minlength=4).float() / len(y)
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.03), counts
    assert float((y == true).float().mean()) == pytest.approx(0.25, abs=0.03), "the true class comes up 1 time in K"


def test_amun_fine_tunes_on_retain_forget_and_adversarial_rows_labelled_with_the_wrong_prediction(monkeypatch, digits_random_refs):
    data = unlearn_data(digits_random_refs)
    original = digits_random_refs.model("original", torch.device("cpu"))
    adv = pgd_l2_nearest(original, data.forget.x, data.forget.y, epsilon=0.1, steps=10)
    y_wrong = predict_logits(original, adv.x_adv).argmax(1)
    assert bool((y_wrong != data.forget.y).all())
    expected = collections.Counter(
        row_keys(data.retain.x, data.retain.y) + row_keys(data.forget.x, data.forget.y) + row_keys(adv.x_adv, y_wrong)
    )
    rec = TrainingRecorder(original, monkeypatch)
    run("amun", original, data, Context(seed=0, on_epoch=rec.mark), epochs=2, epsilon=0.1, steps=10)
    for pairs in rec.epochs():
        seen = collections.Counter(k for x, y in pairs for k in row_keys(x, y))
        assert seen == expected


def test_amun_without_retain_fine_tunes_on_forget_and_adversarial_rows_only(monkeypatch, digits_random_refs):
    data = unlearn_data(digits_random_refs)
    original = digits_random_refs.model("original", torch.device("cpu"))
    adv = pgd_l2_nearest(original, data.forget.x, data.forget.y, epsilon=0.1, steps=10)
    y_wrong = predict_logits(original, adv.x_adv).argmax(1)
    expected = collections.Counter(row_keys(data.forget.x, data.forget.y) + row_keys(adv.x_adv, y_wrong))
    rec = TrainingRecorder(original, monkeypatch)
    run("amun_no_retain", original, data, Context(seed=0, on_epoch=rec.mark), epochs=1, epsilon=0.1, steps=10)
    (pairs,) = rec.epochs()
    assert collections.Counter(k for x, y in pairs for k in row_keys(x, y)) == expected


def test_amun_never_augments_its_adversarial_rows(monkeypatch, digits_random_refs):
    import dataclasses

    data = dataclasses.replace(unlearn_data(digits_random_refs), augment="crop_flip")
    original = digits_random_refs.model("original", torch.device("cpu"))
    adv = pgd_l2_nearest(original, data.forget.x, data.forget.y, epsilon=0.1, steps=10)
    adversarial = collections.Counter(row_keys(adv.x_adv, adv.y_adv))
    real = set(row_keys(data.retain.x)) | set(row_keys(data.forget.x))
    rec = TrainingRecorder(original, monkeypatch)
    run("amun", original, data, Context(seed=0, on_epoch=rec.mark), epochs=1, epsilon=0.1, steps=10)
    (pairs,) = rec.epochs()
    rows = [k for x, y in pairs for k in row_keys(x, y)]
    assert collections.Counter(k for k in rows if k in adversarial) == adversarial, "each x_adv once, unaugmented, label y_adv"
    assert sum(k[0] not in real for k in rows if k not in adversarial) > len(real) // 2, "real rows are augmented"


# ---- SalUn's mask ------------------------------------------------------------------------------


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, K))
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
        model[1].running_var.fill_(3.0)
    return model.train()


def brute_force_saliency_mask(model: nn.Module, forget: TensorSet, ratio: float, batch_size: int) -> list[torch.Tensor]:
    """|sum over in-order batches of grad of batch-mean(-CE)| in eval mode; one global top-r."""
    model = copy.deepcopy(model).eval()
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for start in range(0, len(forget), batch_size):
        x, y = forget.x[start : start + batch_size], forget.y[start : start + batch_size]
        for acc, g in zip(total, torch.autograd.grad(-F.cross_entropy(model(x), y), params)):
            acc += g
    flat = torch.cat([g.abs().flatten() for g in total])
    threshold = flat.sort(descending=True).values[round(ratio * flat.numel()) - 1]
    return [(g.abs() >= threshold).float() for g in total]


def test_salun_mask_is_one_global_ranking_of_eval_mode_saliency():
    model = bn_model()
    forget = tiny_data(n_forget=10).forget
    want = brute_force_saliency_mask(model, forget, 0.4, 4)
    got = SaliencyMask(model, forget, 0.4, 4)
    assert model.training, "the caller's mode is restored"
    assert sum(int(m.sum()) for m in want) == round(0.4 * sum(m.numel() for m in want))
    for m_got, m_want in zip(got.masks, want):
        assert torch.equal(m_got, m_want)
    assert got.density == pytest.approx(0.4, abs=0.02)


def test_salun_frozen_weights_stay_bit_identical_with_zero_momentum(monkeypatch):
    data = tiny_data(n_forget=10, n_retain=12)
    model = bn_model()
    mask = brute_force_saliency_mask(model, data.forget, 0.5, 4)
    states = []
    real_step = torch.optim.SGD.step

    def spy_step(opt, *args, **kwargs):  # record the optimiser after each step of the method
        out = real_step(opt, *args, **kwargs)
        states.append(opt)
        return out

    monkeypatch.setattr(torch.optim.SGD, "step", spy_step)
    got = run("salun", model, data, mask_ratio=0.5, epochs=2, batch_size=4, lr=0.05)
    moved = 0
    for p_new, p_old, m in zip(got.parameters(), model.parameters(), mask):
        assert torch.equal(p_new[m == 0], p_old[m == 0]), "m = 0 weights equal theta_o bit for bit"
        moved += int((p_new[m == 1] != p_old[m == 1]).sum())
    assert moved > 0
    opt = states[-1]
    for p, m in zip(got.parameters(), mask):
        assert bool((opt.state[p]["momentum_buffer"][m == 0] == 0).all()), "frozen weights carry no momentum"


# ---- float32 evaluation ------------------------------------------------------------------------


def test_predict_logits_is_float32_inside_a_bf16_autocast_region():
    model = linear_model().eval()
    x = torch.randn(16, 4)
    with torch.no_grad():
        want = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = predict_logits(model, x)
    assert got.dtype == torch.float32
    assert torch.equal(got, want)


def test_predict_logits_uses_eval_mode_and_restores_the_callers_mode():
    model = bn_model()  # train mode, running statistics far from the batch's
    x = torch.randn(16, 4)
    before = copy.deepcopy(model.state_dict())
    want = copy.deepcopy(model).eval()(x).detach()
    got = predict_logits(model, x)
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
