"""The training engine's fast path (ray_unlearn.train), checked on CPU: behaviour, never timings.

CUDA-only branches are exercised where they can be forced on CPU (the
select formulation of masked augmentation, channels_last, autocast, the
host-staged batch path); pinning itself needs a CUDA driver and is only
checked to be a safe no-op here.
"""

from __future__ import annotations

import pytest
import torch

from ray_unlearn.data.base import TensorSet
from ray_unlearn.device import autocast, pin_memory, place_data, place_model
from ray_unlearn.models import build_model
from ray_unlearn.train import (
    OptimSpec,
    _augment_rows,
    augment_batch,
    batches,
    cross_entropy,
    device_generator,
    fit,
    make_optimizer,
    train_epoch,
)

CPU = torch.device("cpu")
PAD = 4


def position_code(n: int, c: int = 1, h: int = 32, w: int = 32) -> torch.Tensor:
    """Images whose every pixel value names its (channel, row, col): 1 + ((ch * h) + r) * w + col."""
    return (1 + torch.arange(c * h * w, dtype=torch.float32)).view(1, c, h, w).repeat(n, 1, 1, 1)


def reference_crop_flip(img: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """The torchvision definition: zero-pad by 4, crop at (dy, dx), then mirror."""
    _, h, w = img.shape
    padded = torch.nn.functional.pad(img, (PAD, PAD, PAD, PAD))
    out = padded[:, dy : dy + h, dx : dx + w]
    return out.flip(-1) if flip else out


def recover_params(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dy, dx, flip) of each position-coded 32x32 output, read from two pixels near the centre
    (with shifts of at most 4 they always come from inside the image)."""
    w = 32
    a = out[:, 0, 16, 15].long() - 1
    b = out[:, 0, 16, 16].long() - 1
    flip = b < a
    row = b // w
    col = b % w
    dy = row - 16 + PAD
    dx = torch.where(flip, col - (w - 1 - 16) + PAD, col - 16 + PAD)
    return dy, dx, flip


@pytest.mark.parametrize("select", [False, True])
def test_every_output_is_a_padded_crop_of_its_input_possibly_mirrored(select):
    x = position_code(64, c=3)
    x = x + torch.arange(64).view(64, 1, 1, 1) * 10_000  # distinct images too
    before = x.clone()
    gen = torch.Generator().manual_seed(0)
    rows = torch.ones(64, dtype=torch.bool)
    out = _augment_rows(x, "crop_flip", gen, rows, select=select) if select else augment_batch(x, "crop_flip", gen)
    assert out.shape == x.shape and out.dtype == x.dtype and out.is_contiguous()
    assert torch.equal(x, before), "the input is not modified"
    dy, dx, flip = recover_params(out - torch.arange(64).view(64, 1, 1, 1) * 10_000 * (out != 0))
    for i in range(64):
        assert 0 <= dy[i] <= 2 * PAD and 0 <= dx[i] <= 2 * PAD
        # the whole image (all channels, same shift) is exactly that crop: every pixel from the input or padding zeros
        assert torch.equal(out[i], reference_crop_flip(x[i], int(dy[i]), int(dx[i]), bool(flip[i])))


def test_flips_and_shifts_happen_with_the_expected_frequencies():
    n = 4000
    out = augment_batch(position_code(n), "crop_flip", torch.Generator().manual_seed(1))
    dy, dx, flip = recover_params(out)
    assert abs(flip.float().mean().item() - 0.5) < 0.04
    for shifts in (dy, dx):
        share = torch.bincount(shifts, minlength=2 * PAD + 1).float() / n
        assert len(share) == 2 * PAD + 1
        assert (share - 1 / 9).abs().max().item() < 0.03, share
    assert len(set(zip(dy.tolist(), dx.tolist(), flip.tolist()))) == 9 * 9 * 2, "every shift and flip combination occurs"
    # about 1 in 81 images is the identity crop unflipped (dy = dx = 4)
    identity = ((dy == PAD) & (dx == PAD) & ~flip).float().mean().item()
    assert 0.003 < identity < 0.015


def test_crop_flip_on_small_and_empty_batches():
    gen = torch.Generator().manual_seed(0)
    assert augment_batch(torch.rand(0, 3, 32, 32), "crop_flip", gen).shape == (0, 3, 32, 32)
    x = torch.rand(5, 1, 8, 8)
    out = augment_batch(x, "crop_flip", gen)
    assert out.shape == x.shape
    for i in range(5):
        assert set(out[i].flatten().tolist()) <= set(x[i].flatten().tolist()) | {0.0}
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_batch(x, "cutout", gen)
    with pytest.raises(ValueError, match="unknown augmentation"):
        next(batches(TensorSet(x, torch.arange(5)), 2, gen, augment="cutout"))


@pytest.mark.parametrize("select", [False, True])
def test_rows_outside_the_augment_mask_are_untouched(select):
    x = position_code(200, c=3, h=8, w=8) + torch.arange(200).view(200, 1, 1, 1) * 1000
    rows = torch.arange(200) % 3 == 0
    out = _augment_rows(x, "crop_flip", torch.Generator().manual_seed(0), rows, select=select)
    assert torch.equal(out[~rows], x[~rows])
    changed = (out[rows] != x[rows]).flatten(1).any(1).float().mean().item()
    assert changed > 0.9  # only the unflipped identity crop (1 in 81) leaves a row as it was


@pytest.mark.parametrize("staged", [False, True])
def test_batches_with_a_mask_never_augment_rows_outside_it(staged):
    n = 50
    data = TensorSet(position_code(n, h=8, w=8) + torch.arange(n).view(n, 1, 1, 1) * 1000, torch.arange(n))
    mask = torch.arange(n) % 2 == 0
    seen = []
    device = CPU if staged else None
    for x, y in batches(data, 16, torch.Generator().manual_seed(0), augment="crop_flip", augment_mask=mask, device=device):
        assert torch.equal(x[~mask[y]], data.x[y[~mask[y]]])
        seen += y.tolist()
    assert sorted(seen) == list(range(n))


def test_device_generator_is_the_callers_own_on_cpu():
    gen = torch.Generator().manual_seed(0)
    assert device_generator(gen, CPU) is gen
    assert device_generator(gen, "cpu") is gen
    assert device_generator(None, CPU) is None


def test_pinning_and_placing_are_safe_no_ops_on_a_cpu_only_machine():
    data = TensorSet(torch.rand(10, 3, 8, 8), torch.arange(10))
    pinned = pin_memory(data)
    assert torch.equal(pinned.x, data.x) and torch.equal(pinned.y, data.y)
    if not torch.cuda.is_available():
        assert pinned is data
    placed = place_data(data, CPU)
    assert placed.x.device.type == "cpu" and torch.equal(placed.x, data.x)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"shuffle": False},
        {"drop_last": True},
        {"augment": "crop_flip"},
        {"augment": "crop_flip", "shuffle": False},
        {"augment": "crop_flip", "mask": True},
    ],
)
def test_host_staged_batches_equal_device_resident_batches_on_cpu(kwargs):
    kwargs = dict(kwargs)
    n = 70
    data = TensorSet(torch.rand(n, 3, 32, 32), torch.randint(0, 10, (n,)))
    if kwargs.pop("mask", False):
        kwargs["augment_mask"] = torch.rand(n) < 0.5
    resident = list(batches(data, 16, torch.Generator().manual_seed(3), **kwargs))
    staged = list(batches(pin_memory(data), 16, torch.Generator().manual_seed(3), device=CPU, **kwargs))
    assert len(resident) == len(staged) == (n // 16 if kwargs.get("drop_last") else -(-n // 16))
    for (xa, ya), (xb, yb) in zip(resident, staged):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_staged_batches_are_copies_not_views_of_the_data():
    data = TensorSet(torch.rand(8, 1, 8, 8), torch.arange(8))
    before = data.x.clone()
    for x, _ in batches(data, 4, shuffle=False, device=CPU):
        x.add_(1.0)
    assert torch.equal(data.x, before)


def _train(seed: int, staged: bool = False, **epoch_kwargs) -> tuple[list[float], dict]:
    torch.manual_seed(seed)
    data = TensorSet(torch.rand(96, 3, 16, 16), torch.randint(0, 10, (96,)))
    mask = torch.arange(96) % 4 != 0
    torch.manual_seed(seed + 1)
    model = place_model(build_model("small_cnn", (3, 16, 16), 10), CPU)
    gen = torch.Generator().manual_seed(seed)
    device = CPU if staged else None
    losses = fit(
        model,
        lambda: batches(data, 32, gen, augment="crop_flip", augment_mask=mask, device=device),
        OptimSpec(lr=0.05, schedule="cosine"),
        epochs=3,
    )
    return losses, {k: v.clone() for k, v in model.state_dict().items()}


def test_training_is_deterministic_for_a_fixed_seed_and_the_staged_path_matches():
    losses_a, state_a = _train(0)
    losses_b, state_b = _train(0)
    losses_c, state_c = _train(0, staged=True)
    assert losses_a == losses_b == losses_c
    for k in state_a:
        assert torch.equal(state_a[k], state_b[k]) and torch.equal(state_a[k], state_c[k]), k
    losses_d, _ = _train(1)
    assert losses_d != losses_a


def test_channels_last_is_off_on_cpu_by_default_and_forcible():
    model = place_model(build_model("resnet18", (3, 32, 32), 10), CPU)
    conv = model.features[0].weight
    assert conv.is_contiguous() and not conv.is_contiguous(memory_format=torch.channels_last)
    forced = place_model(build_model("resnet18", (3, 32, 32), 10), CPU, channels_last=True)
    assert forced.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    mlp = place_model(build_model("mlp", (1, 8, 8), 10), "cpu", channels_last=True)  # no conv: left alone, no error
    assert all(p.is_contiguous() for p in mlp.parameters())


def test_a_channels_last_model_trains_like_the_default_one_on_cpu():
    data = TensorSet(torch.rand(64, 3, 16, 16), torch.randint(0, 10, (64,)))
    losses = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = place_model(build_model("small_cnn", (3, 16, 16), 10), CPU, channels_last=channels_last)
        opt = make_optimizer(model.parameters(), OptimSpec(lr=0.05))
        gen = torch.Generator().manual_seed(0)
        losses.append([train_epoch(model, batches(data, 16, gen, augment="crop_flip"), cross_entropy, opt) for _ in range(2)])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_autocast_is_a_no_op_on_cpu_unless_forced():
    model = place_model(build_model("small_cnn", (1, 8, 8), 10), CPU).eval()
    x = torch.rand(4, 1, 8, 8)
    with autocast(CPU):
        assert model(x).dtype == torch.float32
    with autocast("cpu", enabled=True):
        assert model(x).dtype == torch.bfloat16
    with autocast(CPU, enabled=False):
        assert model(x).dtype == torch.float32


def test_train_epoch_amp_switch_on_cpu():
    data = TensorSet(torch.rand(48, 1, 8, 8), torch.randint(0, 10, (48,)))
    results = {}
    for amp in (None, False, True):
        torch.manual_seed(0)
        model = place_model(build_model("small_cnn", (1, 8, 8), 10), CPU)
        opt = make_optimizer(model.parameters(), OptimSpec(lr=0.05))
        results[amp] = train_epoch(model, batches(data, 16, torch.Generator().manual_seed(0)), cross_entropy, opt, amp=amp)
    assert results[None] == results[False], "the default on CPU is fp32: bit-for-bit the same as amp=False"
    assert results[True] == pytest.approx(results[False], rel=0.05)  # bf16 forward: close, not equal


def test_train_epoch_reads_the_loss_back_once_per_epoch_not_per_step(monkeypatch):
    data = TensorSet(torch.rand(80, 1, 8, 8), torch.randint(0, 10, (80,)))
    model = place_model(build_model("small_cnn", (1, 8, 8), 10), CPU)
    opt = make_optimizer(model.parameters(), OptimSpec(lr=0.05))
    calls = []
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    it = list(batches(data, 8, torch.Generator().manual_seed(0), augment="crop_flip"))  # 10 steps
    calls.clear()
    train_epoch(model, iter(it), cross_entropy, opt)
    assert calls == ["item"], calls


def test_train_epoch_still_raises_on_a_non_finite_loss():
    data = TensorSet(torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    model = place_model(build_model("small_cnn", (1, 8, 8), 10), CPU)
    opt = make_optimizer(model.parameters(), OptimSpec(lr=0.05))
    with pytest.raises(FloatingPointError):
        train_epoch(model, batches(data, 8), lambda m, x, y: cross_entropy(m, x, y) * float("nan"), opt)

