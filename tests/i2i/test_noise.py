"""i2i_noise (Li et al.): encoder-only training toward noise codes on D_f, toward the original codes on D_r."""

from __future__ import annotations

import torch

from ray_unlearn.i2i.methods import frozen_copy, noise_objective
from ray_unlearn.i2i.metrics import divergence

from .common import run_method


def test_decoder_weights_stay_bit_identical_and_the_encoder_moves(refs, data):
    model, _ = run_method("i2i_noise", refs, data, epochs=2)
    dec, dec0 = model.decoder.state_dict(), refs.original.decoder.state_dict()
    assert all(torch.equal(dec[k], dec0[k]) for k in dec0)
    enc, enc0 = model.encoder.state_dict(), refs.original.encoder.state_dict()
    assert any(not torch.equal(enc[k], enc0[k]) for k in enc0)
    assert all(p.requires_grad for p in model.parameters()), "the returned model is trainable again"


def test_retain_term_is_zero_at_the_original_and_the_forget_term_is_not(refs, data):
    original = frozen_copy(refs.original)
    x_r, x_f = data.retain.x[:64], data.forget.x[:64]
    noise = torch.randn(x_f.shape, generator=torch.Generator().manual_seed(0))
    retain_term, forget_term = noise_objective(refs.original, original, x_r, x_f, noise, alpha=0.2)
    assert retain_term.item() == 0.0
    assert forget_term.item() > 0.0


def test_noise_baseline_moves_forget_outputs_more_than_retain_outputs(refs, data):
    model, _ = run_method("i2i_noise", refs, data, epochs=5)
    assert divergence(model, refs.original, data.forget.x) > 3 * divergence(model, refs.original, data.retain.x)
