"""LPIPS v0.1 with the AlexNet backbone (Zhang et al., 2018): a perceptual distance, also usable as a training loss.

`LPIPS` is an nn.Module taking Bx3xHxW tensors in [0, 1]; its weights are frozen but gradients flow to the
inputs. `lpips_score` is the convenience function for 8-bit images; it uses one network per process.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..errors import ImageError
from ._inputs import network_distance
from .weights import LPIPS_FILE, PretrainedNet, locate_weights

# LPIPS "ScalingLayer": maps [-1, 1] inputs to the statistics AlexNet was trained on.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_TAPS = (1, 4, 7, 9, 11)  # indices of the ReLUs after AlexNet's five convolutions
_CHANNELS = (64, 192, 384, 256, 256)


def alexnet_features() -> nn.Sequential:
    """AlexNet's convolutional part up to the 5th ReLU, with torchvision's `features` indices (for the weight names)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    )


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Normalise feature vectors to unit length over the channel axis."""
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)


class LPIPS(PretrainedNet):
    """LPIPS v0.1 (AlexNet): forward(x, y) with Bx3xHxW tensors in [0, 1] returns B distances (0 for identical).

    Build with `LPIPS.from_weights(path)`; a plain `LPIPS()` has untrained weights.
    """

    weights_file = LPIPS_FILE

    def __init__(self):
        super().__init__()
        self.features = alexnet_features()
        self.lin = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x * 2 - 1) - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out.append(_unit(x))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ImageError(f"LPIPS needs two Bx3xHxW tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
        feats = self._taps(torch.cat([x, y]))
        total = x.new_zeros(x.shape[0])
        for f, lin in zip(feats, self.lin):
            fx, fy = f.chunk(2)
            total = total + lin((fx - fy) ** 2).mean((1, 2, 3))
        return total


@lru_cache(maxsize=None)
def _cached(files: tuple[Path, ...]) -> LPIPS:
    return LPIPS.from_files(files)


def load_lpips(weights: str | os.PathLike | None = None, *, download: bool | None = None) -> LPIPS:
    """The per-process shared LPIPS network (CPU, frozen, eval) for the weights found; do not modify it."""
    return _cached(tuple(f.resolve() for f in locate_weights(LPIPS_FILE, weights, download)))


def lpips_score(a, b, weights: str | os.PathLike | None = None, *, download: bool | None = None) -> float:
    """LPIPS v0.1 (AlexNet) distance of two 8-bit RGB images (uint8 HxWx3 arrays or PIL images); 0 when identical."""
    return network_distance(load_lpips(weights, download=download), a, b)
