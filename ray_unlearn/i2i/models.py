"""Masked autoencoders for image-to-image (I2I) unlearning and the corruption τ (docs/references.md#image-to-image-references).

Every model has `encode(x) -> (N, D)`, `decode(z) -> image` and
`embed(x) -> (N, d)` (a compact code for Fréchet features); forward =
decode(encode(x)). The U-Net's `encode` returns its skip features and its
bottleneck flattened into one vector, so code that compares encoders (the
Gaussian-noise baseline) works unchanged on every architecture.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


def center_mask(shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool (1, 1, H, W): the central (H/2)x(W/2) block (the central 4x4 of an 8x8 digit)."""
    h, w = shape[-2], shape[-1]
    mask = torch.zeros(1, 1, h, w, dtype=torch.bool, device=device)
    top, left = (h - h // 2) // 2, (w - w // 2) // 2
    mask[..., top : top + h // 2, left : left + w // 2] = True
    return mask


def corrupt(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """τ(x): x with the central block zeroed, and the bool mask (1, 1, H, W) of that block."""
    mask = center_mask(x.shape, x.device)
    return x.masked_fill(mask, 0.0), mask


class ConvAutoencoder(nn.Module):
    """conv c->32 + ReLU, `downsamples` x (conv stride 2 + ReLU), linear -> latent; mirrored decoder.

    With one downsample and latent 64 on 1x8x8 this is the digits model of
    docs/references.md#image-to-image-references (conv 1->32, conv 32->64 s2, linear 1024->64).
    """

    def __init__(self, input_shape: tuple[int, int, int], latent: int = 64, downsamples: int = 1, width: int = 32):
        super().__init__()
        c, h, w = input_shape
        if h % 2**downsamples or w % 2**downsamples:
            raise ValueError(f"image size {h}x{w} is not divisible by 2^{downsamples}")
        chans = [width * 2**i for i in range(downsamples + 1)]  # 32, 64, ...
        enc: list[nn.Module] = [nn.Conv2d(c, chans[0], 3, padding=1), nn.ReLU()]
        for a, b in itertools.pairwise(chans):
            enc += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU()]
        grid = (chans[-1], h // 2**downsamples, w // 2**downsamples)
        enc += [nn.Flatten(), nn.Linear(math.prod(grid), latent)]
        dec: list[nn.Module] = [nn.Linear(latent, math.prod(grid)), nn.ReLU(), nn.Unflatten(1, grid)]
        for a, b in zip(chans[::-1], chans[-2::-1]):
            dec += [nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1), nn.ReLU()]
        dec += [nn.Conv2d(chans[0], c, 3, padding=1), nn.Sigmoid()]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())


class _Encoder(nn.Module):
    """U-Net encoder: three stages at H, H/2, H/4 (parameters live here, so freezing `decoder` is exact)."""

    def __init__(self, c: int, width: int):
        super().__init__()
        self.stages = nn.ModuleList([_block(c, width), _block(width, 2 * width, 2), _block(2 * width, 4 * width, 2)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class _Decoder(nn.Module):
    def __init__(self, c: int, width: int):
        super().__init__()
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.fuse2 = _block(4 * width, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.fuse1 = _block(2 * width, width)
        self.out = nn.Sequential(nn.Conv2d(width, c, 1), nn.Sigmoid())

    def forward(self, s1: torch.Tensor, s2: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
        x = self.fuse2(torch.cat([self.up2(bottom), s2], 1))
        x = self.fuse1(torch.cat([self.up1(x), s1], 1))
        return self.out(x)


class UNetAutoencoder(nn.Module):
    """A wider U-Net-style masked autoencoder for CIFAR-size images (3x32x32), width 64/128/256."""

    def __init__(self, input_shape: tuple[int, int, int], width: int = 64):
        super().__init__()
        c, h, w = input_shape
        if h % 4 or w % 4:
            raise ValueError(f"image size {h}x{w} is not divisible by 4")
        self.shapes = [(width, h, w), (2 * width, h // 2, w // 2), (4 * width, h // 4, w // 4)]
        self.encoder = _Encoder(c, width)
        self.decoder = _Decoder(c, width)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Skip features and bottleneck, flattened and concatenated: everything the decoder reads."""
        return torch.cat([f.flatten(1) for f in self.encoder(x)], 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        parts = torch.split(z, [math.prod(s) for s in self.shapes], 1)
        return self.decoder(*(p.view(-1, *s) for p, s in zip(parts, self.shapes)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled bottleneck (4*width values): compact enough for a covariance."""
        return self.encoder(x)[-1].mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(*self.encoder(x))


def build_autoencoder(input_shape: tuple[int, ...]) -> nn.Module:
    """The I2I model for an image shape: digits-size (≤16 px), MNIST-size (1 channel), CIFAR-size (3 channels)."""
    if len(input_shape) != 3:
        raise ValueError(f"I2I models take images (C, H, W); got shape {tuple(input_shape)}")
    c, h, w = input_shape
    if c == 1 and max(h, w) <= 16:
        return ConvAutoencoder((c, h, w), latent=64, downsamples=1)  # digits: docs/references.md#image-to-image-references
    if c == 1:
        return ConvAutoencoder((c, h, w), latent=128, downsamples=2)  # 28x28 -> 64x7x7 -> 128
    return UNetAutoencoder((c, h, w), width=64)
