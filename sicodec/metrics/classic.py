"""PSNR and MS-SSIM: the signal-fidelity metrics, which need no learned weights.

MS-SSIM follows Wang, Simoncelli & Bovik (2003) with the conventions of the widely used `pytorch-msssim`
(so that numbers compare with learned-codec papers): 5 scales, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333),
11-tap gaussian window with sigma 1.5 applied without padding ("valid"), K = (0.01, 0.03), computed per RGB
channel and averaged over the channels, negative contrast terms clamped to 0, 2x2 average pooling between scales
(an odd side is zero-padded by one first).

Small images: the 5th scale needs a side of at least 161 px. Smaller images (down to 11 px) are scored with
the scales that fit and their weights renormalised to sum to 1, with a SicodecNotice warning: such values are
not comparable with 5-scale MS-SSIM. Below 11 px on a side there is no scale at all: ImageError.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ImageError
from ..image import SicodecNotice
from ._inputs import rgb8_pair, to_tensor

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03


def psnr(a, b) -> float:
    """PSNR in dB over all RGB values of two 8-bit images (peak 255); identical images give float('inf')."""
    a, b = rgb8_pair(a, b)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _gaussian(dtype, device) -> torch.Tensor:
    x = torch.arange(WINDOW, dtype=dtype, device=device) - (WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * SIGMA**2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable gaussian filter per channel, valid part only (output is 10 px smaller on each axis)."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, WINDOW), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, WINDOW, 1), groups=c)


def _ssim_terms(x, y, g, data_range) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term per image and channel (BxC each)."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mx, my = _blur(x, g), _blur(y, g)
    vx, vy, cov = _blur(x * x, g) - mx * mx, _blur(y * y, g) - my * my, _blur(x * y, g) - mx * my
    cs = (2 * cov + c2) / (vx + vy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return (lum * cs).mean((2, 3)), cs.mean((2, 3))


def scales_for(height: int, width: int) -> int:
    """How many MS-SSIM scales fit an image (5 from 161 px on the smaller side); 0 below 11 px."""
    side, n = min(height, width), 0
    while n < len(MS_SSIM_WEIGHTS) and side >= WINDOW:
        n, side = n + 1, (side + 1) // 2
    return n


def ms_ssim_tensor(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Differentiable MS-SSIM of BxCxHxW tensors with values in [0, data_range]; returns one value per image (B,)."""
    if x.shape != y.shape or x.dim() != 4:
        raise ImageError(f"MS-SSIM needs two BxCxHxW tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    n = scales_for(*x.shape[-2:])
    if n == 0:
        raise ImageError(f"MS-SSIM needs images of at least {WINDOW} px on a side, got {x.shape[-1]}x{x.shape[-2]}")
    if n < len(MS_SSIM_WEIGHTS):
        warnings.warn(f"MS-SSIM on a {x.shape[-1]}x{x.shape[-2]} image uses {n} scales instead of 5 "
                      "(a side under 161 px); the value is not comparable with 5-scale MS-SSIM", SicodecNotice,
                      stacklevel=2)
    g = _gaussian(x.dtype, x.device)
    w = torch.tensor(MS_SSIM_WEIGHTS[:n], dtype=x.dtype, device=x.device)
    if n < len(MS_SSIM_WEIGHTS):
        w = w / w.sum()  # the standard 5 weights are used as published (they sum to 1.0001)
    terms = []
    for i in range(n):
        ssim, cs = _ssim_terms(x, y, g, data_range)
        if i < n - 1:
            terms.append(torch.relu(cs))
            pad = (x.shape[-2] % 2, x.shape[-1] % 2)
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    terms.append(torch.relu(ssim))
    per_channel = torch.prod(torch.stack(terms) ** w.view(-1, 1, 1), dim=0)
    return per_channel.mean(1)


def ms_ssim(a, b) -> float:
    """MS-SSIM of two 8-bit RGB images (data range 255), in [0, 1]; 1 for identical images (see module docstring)."""
    a, b = rgb8_pair(a, b)
    with torch.no_grad():
        value = ms_ssim_tensor(to_tensor(a, 1.0, torch.float64), to_tensor(b, 1.0, torch.float64), 255.0)
    return float(value[0])
