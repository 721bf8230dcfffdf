"""The numerics of the CUDA code path, checked on CPU (CPU autocast stands in for CUDA's):
attacks and metrics run in exact float32 with cuDNN autotuning off, the classifier head stays
float32 under autocast, and the host syncs removed from hot loops changed no result."""

from __future__ import annotations

import torch
from torch import nn

from ray_unlearn.data.base import TensorSet
from ray_unlearn.device import fp32_logits, plain_classifier
from ray_unlearn.hparams import make_params
from ray_unlearn.methods.attacks import pgd_l2_nearest
from ray_unlearn.methods.mixunlearn import MixUnlearnState
from ray_unlearn.methods.params import MixUnlearnParams
from ray_unlearn.methods.saliency import SaliencyMask
from ray_unlearn.models import build_model
from ray_unlearn.train import predict_logits


def flags() -> tuple[bool, bool, bool]:
    return torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def set_flags(values: tuple[bool, bool, bool]) -> None:
    torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = values


class Recorder(nn.Module):
    """A model that notes the precision settings in force at every forward pass."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.seen: list[tuple] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((*flags(), torch.is_autocast_enabled("cpu")))
        return self.inner(x)


def test_metrics_and_the_attack_run_in_exact_fp32_without_autotuning_and_restore_the_flags():
    torch.manual_seed(0)
    model = Recorder(build_model("small_cnn", (1, 8, 8), 10)).eval()
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    before = flags()
    try:
        set_flags((True, True, True))  # what place_model and torch's defaults leave on a CUDA process
        with torch.autocast("cpu", dtype=torch.bfloat16):
            predict_logits(model, x)
            pgd_l2_nearest(model, x, y, epsilon=0.1, steps=2, max_doublings=1)
        assert model.seen and set(model.seen) == {(False, False, False, False)}
        assert flags() == (True, True, True), "the process-wide settings come back after"
    finally:
        set_flags(before)


def test_logits_keep_the_head_in_float32_under_autocast_and_are_the_forward_without_it():
    torch.manual_seed(0)
    model = build_model("small_cnn", (1, 8, 8), 10).eval()
    x = torch.rand(5, 1, 8, 8)
    assert plain_classifier(model)
    assert torch.equal(fp32_logits(model, x), model(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, rounded, h = fp32_logits(model, x), model(x), model.embed(x)
    assert logits.dtype == torch.float32 and rounded.dtype == torch.bfloat16
    assert torch.equal(logits, model.classifier(h.float()))


def test_a_change_below_bf16_resolution_survives_in_the_logits_under_autocast():
    """SCRUB's KL and MixUnlearn's similarities compare near-identical models: bf16 logits round the difference away."""
    torch.manual_seed(0)
    a = build_model("small_cnn", (1, 8, 8), 10).eval()
    b = build_model("small_cnn", (1, 8, 8), 10).eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        a.classifier.bias.fill_(4.0)
        b.classifier.bias.fill_(4.0 + 1e-3)  # bf16 spacing at 4 is 2**-5
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(a(x), b(x)), "bf16 logits cannot tell the two apart"
        diff = fp32_logits(b, x) - fp32_logits(a, x)
    assert torch.allclose(diff, torch.full_like(diff, 1e-3), atol=2e-4)


def test_a_model_with_its_own_forward_or_hooks_is_not_split():
    torch.manual_seed(0)
    model = build_model("small_cnn", (1, 8, 8), 10)
    handle = model.register_forward_hook(lambda m, i, out: out * 2)
    assert not plain_classifier(model)
    handle.remove()
    assert not plain_classifier(build_model("small_cnn", (1, 8, 8), 10, None, "features"))  # an attached mix layer


def test_mixunlearn_reads_the_original_once_per_batch_for_features_and_targets():
    torch.manual_seed(0)
    model = build_model("small_cnn", (1, 8, 8), 10)
    hp = make_params(MixUnlearnParams, {}, path="mixunlearn_agnostic")
    state = MixUnlearnState(model, hp, 10, use_labels=False, sample=torch.rand(4, 1, 8, 8))
    calls = []
    state.original.features.register_forward_hook(lambda m, i, out: calls.append(len(out)))
    x = torch.rand(7, 1, 8, 8)
    feat, logits = state.original_outputs(x, logits=True)
    assert calls == [7]
    assert torch.equal(feat, state.original.mix_features(x))
    assert torch.equal(logits, state.original(x))
    assert torch.equal(state.targets_from(None, logits), state.targets(x, None))


def test_salun_restore_resets_frozen_weights_exactly_even_from_nan_and_keeps_the_rest():
    torch.manual_seed(0)
    model = build_model("small_cnn", (1, 8, 8), 10)
    forget = TensorSet(torch.rand(8, 1, 8, 8), torch.arange(8))
    mask = SaliencyMask(model, forget, 0.5, 8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(forget.x).sum().backward()
    optimizer.step()
    p, frozen, p0 = mask.params[0], mask.frozen[0], mask.originals[0]
    assert frozen.any() and (~frozen).any()
    with torch.no_grad():
        p[tuple(frozen.nonzero()[0])] = float("nan")
    moved = p.detach().clone()
    mask.restore_frozen(optimizer)
    assert torch.equal(p[frozen], p0[frozen])
    assert torch.equal(p[~frozen], moved[~frozen])
    buf = optimizer.state[p]["momentum_buffer"]
    assert (buf[frozen] == 0).all() and buf[~frozen].ne(0).any()
