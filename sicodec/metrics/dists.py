"""DISTS (Ding et al., 2020): a perceptual distance comparing structure and texture of VGG16 features.

Behaviour of the authors' reference: ImageNet mean/std normalisation, VGG16 with its max-pooling replaced by
L2 pooling (3x3 Hann window, stride 2), six stages (the raw image, then 64, 128, 256, 512, 512 channels), and
1 - sum of alpha-weighted mean terms and beta-weighted (co)variance terms, alpha and beta divided by their sum.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ImageError
from ._inputs import network_distance
from .weights import DISTS_FILE, PretrainedNet, locate_weights

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_CHANNELS = (3, 64, 128, 256, 512, 512)
_TAPS = (3, 8, 15, 22, 29)  # ReLU indices ending VGG16's five blocks
_C1 = _C2 = 1e-6


class L2Pool(nn.Module):
    """Anti-aliased pooling: sqrt of a 3x3 Hann-weighted, stride-2 average of the squared input (per channel)."""

    def __init__(self, channels: int):
        super().__init__()
        h = torch.hann_window(5, periodic=False, dtype=torch.float64)[1:-1]  # (0.5, 1, 0.5)
        k = torch.outer(h, h)
        self.register_buffer("kernel", (k / k.sum()).float().expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x * x, self.kernel, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


def vgg16_features() -> nn.Sequential:
    """VGG16's convolutional part to the 13th ReLU, torchvision `features` indices, max-pools replaced by L2Pool."""
    layers: list[nn.Module] = []
    cin = 3
    for block, (cout, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
        if block:
            layers.append(L2Pool(cin))
        for _ in range(n):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
            cin = cout
    return nn.Sequential(*layers)


class DISTS(PretrainedNet):
    """DISTS: forward(x, y) with Bx3xHxW tensors in [0, 1] returns B distances (about 0 for identical images).

    Build with `DISTS.from_weights(path)`; a plain `DISTS()` has untrained weights.
    """

    weights_file = DISTS_FILE

    def __init__(self):
        super().__init__()
        self.features = vgg16_features()
        self.register_buffer("alpha", torch.full((1, sum(_CHANNELS), 1, 1), 0.1))
        self.register_buffer("beta", torch.full((1, sum(_CHANNELS), 1, 1), 0.1))
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def _stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [x]  # stage 0 is the image itself, not normalised
        h = (x - self.mean) / self.std
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in _TAPS:
                out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ImageError(f"DISTS needs two Bx3xHxW tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
        total = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / total, _CHANNELS, dim=1)
        betas = torch.split(self.beta / total, _CHANNELS, dim=1)
        score = x.new_zeros(x.shape[0])
        for f, a, b in zip(self._stages(torch.cat([x, y])), alphas, betas):
            fx, fy = f.chunk(2)
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
            vx, vy = ((fx - mx) ** 2).mean((2, 3), keepdim=True), ((fy - my) ** 2).mean((2, 3), keepdim=True)
            cov = (fx * fy).mean((2, 3), keepdim=True) - mx * my
            structure = (2 * mx * my + _C1) / (mx**2 + my**2 + _C1)
            texture = (2 * cov + _C2) / (vx + vy + _C2)
            score = score + (a * structure + b * texture).sum((1, 2, 3))
        return 1 - score


@lru_cache(maxsize=None)
def _cached(files: tuple[Path, ...]) -> DISTS:
    return DISTS.from_files(files)


def load_dists(weights: str | os.PathLike | None = None, *, download: bool | None = None) -> DISTS:
    """The per-process shared DISTS network (CPU, frozen, eval) for the weights found; do not modify it."""
    return _cached(tuple(f.resolve() for f in locate_weights(DISTS_FILE, weights, download)))


def dists_score(a, b, weights: str | os.PathLike | None = None, *, download: bool | None = None) -> float:
    """DISTS distance of two 8-bit RGB images (uint8 HxWx3 arrays or PIL images); about 0 when identical."""
    return network_distance(load_dists(weights, download=download), a, b)
