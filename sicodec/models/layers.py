"""Building blocks of the transforms: GDN / inverse GDN and strided 5x5 convolutions."""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


class GDN(nn.Module):
    """Generalized divisive normalisation (Ballé et al. 2016): y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2).

    beta and gamma are stored as square roots (beta = b^2 + 1e-6, gamma = g^2), as tensorflow-compression
    does. A softplus or log parametrisation lets Adam grow a small entry only by a factor of about e^lr
    per step, which kept the cross-channel terms at their initial 1e-4 in our first trained models.
    `inverse=True` multiplies instead (IGDN, used in g_s).
    """

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_sqrt = nn.Parameter(torch.ones(channels))
        # Filled in directly: arithmetic on the meta device (weights.py's shape check) would run torch's
        # Python reference kernels, whose import creates torch's compiler cache folder in $TMPDIR.
        gamma_sqrt = torch.full((channels, channels), 1e-2).fill_diagonal_(math.sqrt(1e-4 + gamma_init))
        self.gamma_sqrt = nn.Parameter(gamma_sqrt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta_sqrt.square() + 1e-6
        gamma = self.gamma_sqrt.square()
        norm = F.conv2d(x * x, gamma[:, :, None, None].to(x.dtype), beta.to(x.dtype))
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution that exactly multiplies the spatial size by `stride`."""
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)
